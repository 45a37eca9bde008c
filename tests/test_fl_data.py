"""Loading client folders, channel/size normalisation, stratified seeded splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl_core.data import load_federation, normalise, pooled, stratified_split
from fl_core.testing import make_noise_folders, make_shape_folders


def test_stratified_split_keeps_class_shares_and_is_deterministic():
    y = np.repeat(np.arange(3), [20, 40, 10])
    tr, va, te = stratified_split(y, 0.1, 0.2, seed=5)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(len(y)))
    assert np.bincount(y[te]).tolist() == [4, 8, 2]
    assert np.bincount(y[va]).tolist() == [2, 4, 1]
    again = stratified_split(y, 0.1, 0.2, seed=5)
    assert len(again) == 3 and all(np.array_equal(a, b) for a, b in zip((tr, va, te), again, strict=True))
    other = stratified_split(y, 0.1, 0.2, seed=6)
    assert not np.array_equal(te, other[2])


def test_single_example_class_stays_in_train():
    y = np.array([0, 1, 1, 1, 1, 1])
    tr, va, te = stratified_split(y, 0.4, 0.4, seed=0)
    assert 0 in y[tr] and 0 not in y[np.concatenate([va, te])]


def test_mixed_sizes_and_channels_become_one_tensor_shape(tmp_path):
    dirs = make_noise_folders(tmp_path, clients=2, per_class=6, classes=2)
    for chans in (1, 3):
        fed = load_federation(dirs, image_size=24, in_chans=chans, val_fraction=0.2, test_fraction=0.2)
        for c in fed.clients:
            for split in (c.train, c.val, c.test):
                assert split.x.dtype == torch.uint8 and tuple(split.x.shape[1:]) == (chans, 24, 24)
            assert len(c.train) + len(c.val) + len(c.test) == 12
    x = normalise(torch.tensor([[0, 255]], dtype=torch.uint8))
    assert x.tolist() == [[-1.0, 1.0]]


def test_label_space_is_sorted_union_when_a_client_lacks_classes(tmp_path):
    dirs = make_shape_folders(tmp_path, clients=2, per_class=5, size=16, missing={1: ("circle",)})
    fed = load_federation(dirs, image_size=16)
    assert fed.classes == ("circle", "square", "triangle")
    counts = fed.clients[1].label_counts(fed.num_classes)
    assert counts[0] == 0 and counts[1] > 0 and counts[2] > 0
    assert len(pooled(fed).train) == sum(len(c.train) for c in fed.clients)


def test_folder_without_class_subfolders_says_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="class sub-folders"):
        load_federation([str(tmp_path / "empty")])
