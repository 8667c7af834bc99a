"""``harness run --docker``: the same run inside a container, through the
Docker SDK for Python (``pip install 'facebench[docker]'``).

The resolved :class:`~harness.config.RunConfig` is written as YAML into the
reports folder and the container runs ``harness run --config FILE``:

* the reports folder is mounted read-write, every data path (``--train`` /
  ``--eval`` ``NAME=PATH``, ``FACEBENCH_DATA``, ``--init``, and any
  existing file an ``-o`` option names, e.g. ``weights=PATH``) read-only — each
  at its own absolute host path, and the container starts in the caller's
  working directory, so relative paths in the config mean the same thing
  inside and the run has the same config hash as without Docker;
* ``network_mode="none"`` unless ``--network`` says otherwise;
* the container runs as the caller's uid:gid, so the files it writes belong
  to the caller;
* ``--gpus all|N|ID,ID`` becomes a ``DeviceRequest`` (the NVIDIA runtime
  must be installed on the engine; ``harness doctor`` reports it);
* ``--nproc-per-node`` etc. are passed on: torchrun runs inside the container
  (``--gpus all --nproc-per-node <number of GPUs>``);
* the container's output is streamed live, its exit status becomes ours,
  and Ctrl-C stops and removes it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.errors import ConfigError, HarnessError

if TYPE_CHECKING:
    from harness.config import RunConfig

__all__ = ["DockerRunError", "container_spec", "device_requests", "run_in_docker"]

#: Shared memory for DataLoader workers and torchrun's gloo/NCCL.
SHM_SIZE = "2g"


class DockerRunError(HarnessError):
    """The container could not be started, or the run inside it failed."""


def device_requests(gpus: str | None) -> list[Any]:
    """``--gpus`` as Docker SDK ``DeviceRequest`` objects (empty: no GPU).

    ``all`` -> every GPU; ``N`` -> N GPUs; ``0,2`` -> those device ids
    (the ``docker run --gpus`` meanings).
    """
    if gpus is None:
        return []
    from docker.types import DeviceRequest

    g = str(gpus).strip()
    if g == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if g.isdigit():
        return [DeviceRequest(count=int(g), capabilities=[["gpu"]])]
    ids = [p.strip() for p in g.split(",") if p.strip()]
    if not ids or not all(p.isdigit() for p in ids):
        raise ConfigError(f"--gpus {gpus!r} is not 'all', a count (2) or device ids (0,1)")
    return [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]


def _data_mounts(cfg: "RunConfig") -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Read-only binds of the data the run reads, and the environment that points at them."""
    from harness.paths import data_root

    mounts: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for ref in (*cfg.train, *cfg.eval):
        if ref.path is None:
            continue
        host = Path(ref.path).expanduser().resolve()
        if not host.exists():
            raise ConfigError(f"{ref.name}={ref.path}: {host} does not exist, so it cannot be mounted")
        mounts[str(host)] = {"bind": str(host), "mode": "ro"}
    root = data_root()
    if root is not None and root.is_dir():
        mounts.setdefault(str(root), {"bind": str(root), "mode": "ro"})
        env["FACEBENCH_DATA"] = str(root)
    if cfg.training.init:
        init = Path(cfg.training.init).expanduser().resolve()
        if init.exists():
            mounts.setdefault(str(init), {"bind": str(init), "mode": "ro"})
    for path in option_paths(cfg):
        mounts.setdefault(str(path), {"bind": str(path), "mode": "ro"})
    return mounts, env


def option_paths(cfg: "RunConfig") -> list[Path]:
    """Files and folders named by ``-o COMPONENT.KEY=VALUE`` options (weights, a pairs file of
    one's own, ...; comma-separated lists too) that exist here, resolved."""
    found: dict[str, Path] = {}
    for opts in cfg.options.values():
        for value in dict(opts).values():
            if not isinstance(value, (str, os.PathLike)):
                continue
            for part in str(value).split(","):
                part = part.strip()
                if not part or "\n" in part:
                    continue
                try:
                    path = Path(part).expanduser()
                    if path.exists():
                        found.setdefault(str(path.resolve()), path.resolve())
                except OSError:  # not a path at all (too long, bad characters)
                    continue
    return list(found.values())


def container_spec(cfg: "RunConfig", config_file: Path) -> dict[str, Any]:
    """Keyword arguments of ``client.containers.run`` for this run (no engine needed)."""
    reports = Path(cfg.reports).expanduser().resolve()
    mounts, env = _data_mounts(cfg)
    # the reports folder last: read-write wins over a read-only parent bind
    mounts[str(reports)] = {"bind": str(reports), "mode": "rw"}
    env.update({"PYTHONUNBUFFERED": "1", "HOME": "/tmp", "FACEBENCH_PROGRESS": "0"})
    for name in ("FACEBENCH_PLUGINS", "FACEBENCH_DEBUG", "CUDA_VISIBLE_DEVICES"):
        if name in os.environ:
            env[name] = os.environ[name]
    L = cfg.launcher
    return {
        "image": L.image,
        "command": ["run", "--config", str(config_file)],
        "volumes": mounts,
        "working_dir": str(Path.cwd().resolve()),
        "environment": env,
        "network_mode": L.network,
        "user": f"{os.getuid()}:{os.getgid()}",
        "device_requests": device_requests(L.gpus),
        "shm_size": SHM_SIZE,
        "detach": True,
        "labels": {"org.facebench.run": "1"},
    }


def _client():
    try:
        import docker
    except ImportError:
        raise HarnessError(
            "--docker needs the Docker SDK for Python: pip install 'facebench[docker]' (or drop --docker)"
        ) from None
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # docker.errors.DockerException and socket errors alike
        raise HarnessError(
            f"no Docker engine answers at {where}: start one (or set DOCKER_HOST) or drop --docker ({exc})"
        ) from None
    return client


def run_in_docker(cfg: "RunConfig", *, client: Any = None, out=None) -> int:
    """Run ``cfg`` in a container and wait for it; returns its exit status (0).

    :param client: a ``docker.DockerClient`` (default: from the environment).
    :param out: where the container's output goes (default: this process's stdout).
    :raises DockerRunError: the image is missing, the container cannot start,
        or the run inside exits non-zero.
    """
    from harness.runner.torchrun import write_config

    client = client or _client()
    L = cfg.launcher
    import docker.errors

    try:
        client.images.get(L.image)
    except docker.errors.ImageNotFound:
        raise DockerRunError(
            f"image {L.image!r} not found on the engine: build it with "
            f"`docker build -f Dockerfile.gpu -t {L.image} .` (docker/README.md) or pass --image"
        ) from None
    reports = Path(cfg.reports).expanduser().resolve()
    reports.mkdir(parents=True, exist_ok=True)
    config_file = write_config(cfg, reports / ".launch", launcher=True)
    spec = container_spec(cfg, config_file)
    stream = out or sys.stdout
    click.echo(f"docker: running in {L.image} (network {L.network}"
               f"{', gpus ' + L.gpus if L.gpus else ''}, user {spec['user']})", err=True)
    try:
        container = client.containers.run(**spec)
    except docker.errors.APIError as exc:
        hint = ""
        if L.gpus and "gpu" in str(exc).lower():
            hint = " — is the NVIDIA container runtime installed on the engine? (`harness doctor`)"
        raise DockerRunError(f"cannot start a container of {L.image!r}: {exc}{hint}") from None
    try:
        try:
            for chunk in container.logs(stream=True, follow=True):
                text = chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else str(chunk)
                stream.write(text)
                stream.flush()
            status = container.wait()
        except KeyboardInterrupt:
            click.echo("docker: interrupted; stopping the container", err=True)
            try:
                container.stop(timeout=10)
            except Exception:  # noqa: BLE001 - removal below is what matters
                pass
            raise
        code = int(status.get("StatusCode", 1))
    finally:
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        try:
            config_file.unlink()
        except OSError:
            pass
    if code != 0:
        raise DockerRunError(f"the run inside the container ({L.image}) exited with status {code}")
    return code
