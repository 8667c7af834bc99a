"""wider and fddb datasets."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import DataError
from harness.formats.detection import parse_labelv2
from tests.conftest import need_data


def test_wider_stretched_subset(fresh_registry):
    root = need_data("wider")
    ds = fresh_registry.build("dataset", "wider", path=str(root)).detection()
    assert len(ds.samples) == 200 and "416x416" in ds.protocol
    sizes = {e.path: (e.width, e.height) for e in parse_labelv2(root / "labelv2_val.txt")}
    s = ds.samples[0]
    w, h = sizes[s.info["file"]]
    assert s.info["original_size"] == (w, h)
    assert ds.loader(s.key).shape == (416, 416, 3)
    assert s.boxes[:, [0, 2]].max() <= 416 + 1 and s.boxes[:, [1, 3]].max() <= 416 + 1
    easy = fresh_registry.build("dataset", "wider", {"difficulty": "easy"}, path=str(root)).detection()
    hard_kept = sum(int((~x.ignore).sum()) for x in ds.samples)
    easy_kept = sum(int((~x.ignore).sum()) for x in easy.samples)
    assert 0 < easy_kept < hard_kept <= sum(len(x.boxes) for x in ds.samples)


def test_fddb_boxes_and_missing_images(fresh_registry):
    ds = fresh_registry.build("dataset", "fddb", path=str(need_data("fddb"))).detection()
    assert len(ds.samples) == 2845 and sum(len(s.boxes) for s in ds.samples) == 5171
    b = ds.samples[0].boxes[0]
    assert b[0] < 269.69 < b[2] and b[1] < 161.78 < b[3]
    with pytest.raises(DataError, match="fddb.images"):
        ds.loader(ds.samples[0].key)
