"""Pretrained weights: every declared digest is a full sha256 and matches its file."""

from __future__ import annotations

import hashlib
import os

import pytest

from harness.errors import DataError, HarnessError
from harness.registry import Registry
from harness.specs import WeightsSpec
from harness.weights import checked_digest, locate_weights, sha256_file

REQUIRE_DATA = os.environ.get("FACEBENCH_REQUIRE_DATA") == "1"


def _module_weights() -> list[WeightsSpec]:
    """WeightsSpecs plugins keep in tables beside their component specs (loaded by option)."""
    from facebench_plugins.detectors import WEIGHTS
    from facebench_plugins.liveness import MINIFASNET_WEIGHTS

    return list(WEIGHTS.values()) + list(MINIFASNET_WEIGHTS.values())


def _all_weights() -> list[WeightsSpec]:
    reg = Registry()
    found = {w for kind in reg.kinds() for spec in reg.specs(kind) for w in spec.weights}
    found.update(_module_weights())
    return sorted(found, key=lambda w: (w.filename, w.sha256))


WEIGHTS = _all_weights()


def test_weights_are_registered():
    names = {w.filename for w in WEIGHTS}
    assert {"068.ckpt", "pnet.pt", "dlib_face_recognition_resnet_model_v1.dat",
            "2.7_80x80_MiniFASNetV2.pth"} <= names


@pytest.mark.parametrize("spec", WEIGHTS, ids=lambda w: w.filename)
def test_digest_is_full_and_matches_the_file(spec):
    assert checked_digest(spec) == spec.sha256, f"{spec.filename}: store the lower-case full digest"
    try:
        path = locate_weights(spec, verify=False)
    except DataError as exc:
        if REQUIRE_DATA:
            pytest.fail(f"{spec.filename} not found and FACEBENCH_REQUIRE_DATA=1: {exc}")
        pytest.skip(f"{spec.filename} not installed here: {exc}")
    assert sha256_file(path) == spec.sha256
    assert locate_weights(spec) == path


def _spec_for(path, digest: str) -> WeightsSpec:
    return WeightsSpec(path.name, sha256=digest, env="FACEBENCH_TEST_WEIGHTS")


def test_prefix_digest_is_refused(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    full = hashlib.sha256(b"weights").hexdigest()
    assert locate_weights(_spec_for(f, full), f) == f
    # a 16-hex prefix used to pass as a match; now the spec itself is rejected
    with pytest.raises(HarnessError, match="full 64-hex-digit digest"):
        locate_weights(_spec_for(f, full[:16]), f)


def test_wrong_digest_names_both(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    other = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(DataError, match=f"expected {other}"):
        locate_weights(_spec_for(f, other), f)
