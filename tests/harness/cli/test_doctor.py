"""``harness doctor`` when no Docker engine answers: one clear line, no raw exception."""

from __future__ import annotations

import json

import pytest

from harness.cli import main

pytest.importorskip("docker", reason="the docker SDK is a dependency of facebench")


def test_doctor_says_docker_is_not_reachable_in_one_line(tmp_path, monkeypatch, capsys):
    sock = tmp_path / "no-engine.sock"  # nothing listens here
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    line = [ln for ln in out.splitlines() if ln.startswith("docker ")]
    assert len(line) == 1, out
    assert f"Docker is not reachable: no engine answered at unix://{sock}" in line[0]
    assert "ci_engine.sh start" in line[0] and "systemctl start docker" in line[0]
    for raw in ("Connection aborted", "FileNotFoundError", "Error while fetching", "DockerException"):
        assert raw not in out


def test_doctor_json_keeps_the_raw_detail_apart(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'none.sock'}")
    assert main(["doctor", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)["docker"]
    assert d["engine"] is False and d["reason"].startswith("Docker is not reachable")
    assert "DockerException" in d["detail"]
