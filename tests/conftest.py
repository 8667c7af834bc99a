"""Shared fixtures.

Real data is read from FACEBENCH_DATA (default ../shared/data beside the
repository).  Tests that need it skip with a reason when it is absent, and
fail instead under CI, where FACEBENCH_REQUIRE_DATA=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.paths import data_root as _data_root
from harness.registry import Registry, reset_registry

REQUIRE_DATA = os.environ.get("FACEBENCH_REQUIRE_DATA") == "1"


def need_data(relative: str = "") -> Path:
    """The path FACEBENCH_DATA/relative, or skip (fail under CI) when absent."""
    root = _data_root()
    path = (root / relative) if root else None
    if path is None or not path.exists():
        msg = (
            f"real data {relative or 'folder'!r} not found under FACEBENCH_DATA="
            f"{root or '(unset; default ../shared/data)'}"
        )
        if REQUIRE_DATA:
            pytest.fail(msg + " — FACEBENCH_REQUIRE_DATA=1 forbids skipping")
        pytest.skip(msg)
    return path


@pytest.fixture
def data_root() -> Path:
    return need_data("")


@pytest.fixture
def lfw_home() -> Path:
    return need_data("lfw_home")


@pytest.fixture
def fresh_registry():
    """A registry loaded from the installed entry points, set as the global one."""
    reg = Registry()
    reset_registry(reg)
    yield reg
    reset_registry(None)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module of tiny-tensor tests.

    With other work on the machine, OpenMP threads that spin-wait for each
    other make small convolutions tens of times slower (measured: an IR-50
    16x16 step took 20 s with 2 threads and 0.4 s with 1).  Modules opt in
    with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
