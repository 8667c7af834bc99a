"""``harness run --docker`` at the Docker SDK level: what the runner asks of
the engine (mounts, network, user, GPUs), live logs, exit status, Ctrl-C.

The engine is a small fake with the SDK's surface (``images.get``,
``containers.run``, ``logs``, ``wait``, ``stop``, ``remove``); the real
engine is exercised in tests/docker/.  ``--gpus`` cannot run here (no GPU,
no NVIDIA runtime), so its DeviceRequest plumbing is checked here.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

docker = pytest.importorskip("docker", reason="the Docker SDK (pip install 'facebench[docker]') is not installed")
from docker.types import DeviceRequest  # noqa: E402

from harness.config import RunConfig  # noqa: E402
from harness.errors import ConfigError, HarnessError  # noqa: E402
from harness.runner.docker import DockerRunError, device_requests, run_in_docker  # noqa: E402


class FakeContainer:
    def __init__(self, logs: list[bytes], status: int = 0, interrupt: bool = False) -> None:
        self._logs, self._status, self._interrupt = logs, status, interrupt
        self.stopped = self.removed = False

    def logs(self, stream: bool, follow: bool):
        assert stream and follow
        for chunk in self._logs:
            yield chunk
        if self._interrupt:
            raise KeyboardInterrupt

    def wait(self):
        return {"StatusCode": self._status}

    def stop(self, timeout: int = 10):
        self.stopped = True

    def remove(self, force: bool = False):
        self.removed = True


class FakeClient:
    def __init__(self, container: FakeContainer, images=("facebench",)) -> None:
        self.container, self.images_present = container, set(images)
        self.run_kwargs: dict | None = None
        client = self

        class Images:
            def get(self, name):
                if name not in client.images_present:
                    raise docker.errors.ImageNotFound(f"no such image: {name}")
                return object()

        class Containers:
            def run(self, **kw):
                client.run_kwargs = kw
                # the config file the container will read exists, in the reports mount
                assert Path(kw["command"][-1]).exists()
                return client.container

        self.images = Images()
        self.containers = Containers()


def _cfg(tmp_path: Path, **launcher) -> RunConfig:
    data = tmp_path / "att"
    data.mkdir(exist_ok=True)
    return RunConfig(backbones=("resnet20",), losses=("arcface",), train=(f"att={data}",),
                     reports=str(tmp_path / "reports"), launcher={"docker": True, **launcher})


def test_the_container_gets_mounts_network_user_and_gpus(tmp_path):
    fake = FakeClient(FakeContainer([b"hello ", b"from the container\n"]))
    out = io.StringIO()
    assert run_in_docker(_cfg(tmp_path, gpus="all"), client=fake, out=out) == 0
    kw = fake.run_kwargs
    assert out.getvalue() == "hello from the container\n"  # streamed as it came
    assert kw["image"] == "facebench" and kw["detach"] is True
    assert kw["network_mode"] == "none"
    assert kw["user"] == f"{os.getuid()}:{os.getgid()}"
    reports = str((tmp_path / "reports").resolve())
    assert kw["volumes"][reports] == {"bind": reports, "mode": "rw"}
    data = str((tmp_path / "att").resolve())
    assert kw["volumes"][data] == {"bind": data, "mode": "ro"}
    assert kw["working_dir"] == str(Path.cwd().resolve())
    assert kw["command"][:2] == ["run", "--config"] and kw["command"][2].startswith(reports)
    (req,) = kw["device_requests"]
    assert isinstance(req, DeviceRequest) and req["Count"] == -1 and req["Capabilities"] == [["gpu"]]
    assert fake.container.removed
    assert not Path(kw["command"][2]).exists()  # the launch config is cleaned up


def test_the_config_passed_in_keeps_torchrun_settings_and_drops_docker(tmp_path):
    import yaml

    seen = {}

    class Keep(FakeClient):
        pass

    fake = Keep(FakeContainer([]))
    orig_run = fake.containers.run

    def run(**kw):
        seen.update(yaml.safe_load(Path(kw["command"][-1]).read_text()))
        return orig_run(**kw)

    fake.containers.run = run
    run_in_docker(_cfg(tmp_path, gpus="2", nproc_per_node=2), client=fake, out=io.StringIO())
    assert seen["launcher"]["nproc_per_node"] == 2 and "docker" not in seen["launcher"]
    assert seen["backbone"] == ["resnet20"] and seen["loss"] == ["arcface"]


def test_gpu_flags_become_device_requests():
    assert device_requests(None) == []
    (a,) = device_requests("all")
    assert a["Count"] == -1
    (n,) = device_requests("2")
    assert n["Count"] == 2 and n["Capabilities"] == [["gpu"]]
    (ids,) = device_requests("0,3")
    assert ids["DeviceIDs"] == ["0", "3"]
    with pytest.raises(ConfigError, match="gpus"):
        device_requests("0,x")


def test_network_is_passed_when_asked(tmp_path):
    fake = FakeClient(FakeContainer([]))
    run_in_docker(_cfg(tmp_path, network="host"), client=fake, out=io.StringIO())
    assert fake.run_kwargs["network_mode"] == "host" and fake.run_kwargs["device_requests"] == []


def test_a_failing_run_passes_its_status_back(tmp_path):
    fake = FakeClient(FakeContainer([b"error: boom\n"], status=3))
    with pytest.raises(DockerRunError, match="exited with status 3"):
        run_in_docker(_cfg(tmp_path), client=fake, out=io.StringIO())
    assert fake.container.removed


def test_ctrl_c_stops_and_removes_the_container(tmp_path):
    fake = FakeClient(FakeContainer([b"step 1\n"], interrupt=True))
    with pytest.raises(KeyboardInterrupt):
        run_in_docker(_cfg(tmp_path), client=fake, out=io.StringIO())
    assert fake.container.stopped and fake.container.removed


def test_a_missing_image_says_how_to_build_it(tmp_path):
    fake = FakeClient(FakeContainer([]), images=())
    with pytest.raises(DockerRunError, match="docker build -f Dockerfile.gpu"):
        run_in_docker(_cfg(tmp_path), client=fake, out=io.StringIO())


def test_a_missing_data_path_is_refused_before_starting(tmp_path):
    cfg = RunConfig(backbones=("resnet20",), train=(f"att={tmp_path / 'nowhere'}",),
                    reports=str(tmp_path / "r"), launcher={"docker": True})
    with pytest.raises(ConfigError, match="does not exist"):
        run_in_docker(cfg, client=FakeClient(FakeContainer([])), out=io.StringIO())


def test_no_engine_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    with pytest.raises(HarnessError, match=r"no Docker engine answers at unix://.*no\.sock.*drop --docker"):
        run_in_docker(_cfg(tmp_path))


def test_files_named_by_options_are_mounted_read_only(tmp_path):
    """-o NAME.weights=PATH (also A,B lists) and pairs files of one's own reach the container."""
    import dataclasses

    a, b = tmp_path / "w" / "a.pt", tmp_path / "w" / "b.pt"
    a.parent.mkdir()
    a.write_bytes(b"x")
    b.write_bytes(b"y")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\t1\n")
    cfg = dataclasses.replace(_cfg(tmp_path), options={
        "demeshnet": {"weights": f"{a},{b}", "width": 32},
        "lfw": {"pairs": str(pairs)},
        "mobilefacenet": {"weights": "casia"},  # a named variant, not a path: nothing to mount
    })
    fake = FakeClient(FakeContainer([]))
    assert run_in_docker(cfg, client=fake, out=io.StringIO()) == 0
    vols = fake.run_kwargs["volumes"]
    for path in (a, b, pairs):
        key = str(path.resolve())
        assert vols[key] == {"bind": key, "mode": "ro"}
    assert not any(k.endswith("casia") for k in vols)
