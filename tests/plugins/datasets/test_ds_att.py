"""The att dataset: subject ranges, grayscale to RGB, generated folds."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError
from tests.conftest import need_data


def test_train_and_verification_split(fresh_registry):
    root = str(need_data("att_faces"))
    train = fresh_registry.build("dataset", "att", {"train_subjects": "1-30"}, path=root).train_set()
    assert len(train) == 300 and train.num_classes == 30 and train.identities[0] == "s1"
    img = train.load(0)
    assert img.shape == (112, 92, 3) and img.dtype == np.uint8
    ver = fresh_registry.build("dataset", "att", {"test_subjects": "31-40"}, path=root).verification()
    assert len(ver) == 600 and np.bincount(ver.folds).tolist() == [60] * 10
    names = {ver.images.keys[i].split("/")[-2] for i in ver.pairs.ravel()}
    assert names <= {f"s{i}" for i in range(31, 41)}
    lab = ver.images.labels
    assert np.array_equal(lab[ver.pairs[:, 0]] == lab[ver.pairs[:, 1]], ver.issame)


def test_bad_subjects(fresh_registry):
    with pytest.raises(ConfigError, match="not a number or a range"):
        fresh_registry.build("dataset", "att", {"train_subjects": "a-b"}, path=str(need_data("att_faces")))


def test_default_train_and_test_subjects_are_disjoint(fresh_registry):
    root = str(need_data("att_faces"))
    ds = fresh_registry.build("dataset", "att", {}, path=root)
    train, ver = ds.train_set(), ds.verification()
    assert set(train.identities).isdisjoint(ver.images.identities)
    assert train.aligned == ver.images.aligned == "att_92x112"
