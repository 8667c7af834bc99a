"""facebench's built-in plugins, installed as ``facebench_plugins``.

Each sub-package is one entry point in the group ``facebench`` (see
pyproject.toml) — the same mechanism a third-party plugin uses.  A
sub-package's ``__init__`` only returns specs; networks and heavy imports live
in the modules its factories name.
"""
