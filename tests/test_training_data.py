"""Training data: layouts and groups, pairing rules, generated trimaps, the official crop-resize pipeline, bad input."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from PIL import Image

from icm_model.evaluation.evaluate import Sample
from icm_model.training.data import (
    INTERPOLATIONS,
    SEGMENTATION,
    DatasetSource,
    PairDataset,
    PipelineOptions,
    TrainingItem,
    collect_items,
    discover_items,
    load_item,
    step_keys,
    trimap_from_alpha,
)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _disc(height, width):
    y, x = np.mgrid[:height, :width]
    return (np.clip((min(height, width) / 3 - np.hypot(y - height / 2, x - width / 2)) / 4 + 0.5, 0, 1) * 255).astype(
        np.uint8
    )


def _group_folders(root, groups):
    """Folder-per-group layout: {group: count} images of 40x60 with a soft disc alpha."""
    rng = np.random.default_rng(0)
    for group, count in groups.items():
        for i in range(count):
            _save(root / group / f"im{i}.png", rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
            _save(root / group / f"im{i}_alpha.png", _disc(40, 60))
    return root


def test_both_layouts_and_the_group_rule(tmp_path):
    folders = discover_items(DatasetSource(_group_folders(tmp_path / "a", {"cat": 2, "dog": 1})))
    assert [(i.sample.name, i.group) for i in folders] == [
        ("cat/im0", "a/cat"),
        ("cat/im1", "a/cat"),
        ("dog/im0", "a/dog"),
    ]
    rng = np.random.default_rng(1)
    for stem in ("cat_01", "cat-2", "cat3", "dog_1"):
        _save(tmp_path / "b" / "image" / f"{stem}.jpg", rng.integers(0, 255, (30, 30, 3), dtype=np.uint8))
        _save(tmp_path / "b" / "alpha" / f"{stem}.png", _disc(30, 30))
    icm = discover_items(DatasetSource(tmp_path / "b", SEGMENTATION))
    assert [(i.sample.name, i.group, i.kind) for i in icm] == [
        ("cat-2", "b/cat", SEGMENTATION), ("cat3", "b/cat", SEGMENTATION), ("cat_01", "b/cat", SEGMENTATION),
        ("dog_1", "b/dog", SEGMENTATION),
    ]  # fmt: skip


def test_official_order_is_the_sorted_list_shuffled_by_randomstate_1(tmp_path):
    items = collect_items([DatasetSource(_group_folders(tmp_path, {"a": 3, "b": 4}))], self_pairing=True)
    names = sorted(f"{g}/im{i}" for g, n in (("a", 3), ("b", 4)) for i in range(n))
    expected = [names[i] for i in np.random.RandomState(1).permutation(len(names))]
    assert [i.sample.name for i in items] == expected


def _pairs(dataset, index, draws=200):
    return Counter(dataset.reference_of(index, random.Random(seed)) for seed in range(draws))


@pytest.mark.parametrize("self_pairing", [True, False])
def test_pairs_stay_in_their_group_and_self_pairing_only_in_small_groups(tmp_path, self_pairing):
    items = collect_items([DatasetSource(_group_folders(tmp_path, {"pair": 2, "trio": 3}))], self_pairing=True)
    dataset = PairDataset(items, PipelineOptions(size=32, self_pairing=self_pairing), seed=0)
    for index, item in enumerate(items):
        drawn = _pairs(dataset, index)
        assert {items[i].group for i in drawn} == {item.group}
        size = sum(other.group == item.group for other in items)
        assert (index in drawn) == (self_pairing and size <= 2)
        assert len(drawn) == (size if self_pairing and size <= 2 else size - 1)


def test_group_of_one_image(tmp_path):
    root = _group_folders(tmp_path, {"cat": 2, "lone": 1})
    with pytest.raises(ValueError, match=r"group '.*/lone' has one image \('.*lone/im0.png'\).*add another image"):
        collect_items([DatasetSource(root)], self_pairing=False)
    items = collect_items([DatasetSource(root)], self_pairing=True)
    lone = next(i for i, item in enumerate(items) if item.group.endswith("lone"))
    assert set(_pairs(PairDataset(items, PipelineOptions(size=32), 0), lone)) == {lone}


def test_generated_trimap_by_hand():
    alpha = np.zeros((5, 7), np.float32)
    alpha[2, 1] = 0.3  # one soft pixel: a 3x3 unknown square at radius 1
    alpha[:, 5:] = 1.0  # a hard edge between columns 4 and 5: a band of 2 + 2 radius columns
    expected = np.zeros((5, 7), np.uint8)
    expected[1:4, 0:3] = 128
    expected[:, 5:] = 255
    expected[:, 3:7] = 128
    assert np.array_equal(trimap_from_alpha(alpha, 1), expected)


def test_generated_trimap_matches_scipy_dilation_on_a_photo():
    from skimage import data

    horse = ~data.horse()  # a binary silhouette photo: white horse on black
    alpha = horse.astype(np.float32)
    alpha[100:110, 100:200] = 0.5  # and a soft patch
    radius = 4
    got = trimap_from_alpha(alpha, radius)
    a = alpha
    fg = a >= 0.5
    edge = ndi.binary_dilation(fg, np.ones((3, 3))) & ndi.binary_dilation(~fg, np.ones((3, 3)))
    unknown = ndi.binary_dilation(((a > 0) & (a < 1)) | edge, np.ones((2 * radius + 1,) * 2))
    expected = np.where(unknown, 128, np.where(fg, 255, 0))
    assert np.array_equal(got, expected)
    assert 0 < (got == 128).mean() < 0.3


def _item(tmp_path, image, alpha, trimap=None, kind="matting"):
    _save(tmp_path / "i.png", image)
    _save(tmp_path / "a.png", alpha)
    if trimap is not None:
        _save(tmp_path / "t.png", trimap)
    sample = Sample("i", "g", tmp_path / "i.png", tmp_path / "a.png", None if trimap is None else tmp_path / "t.png")
    return TrainingItem(sample, "g", kind)


def test_centre_crop_totensor_and_trimap_thresholds(tmp_path):
    image = np.zeros((10, 17, 3), np.uint8)
    image[..., 0] = np.arange(17, dtype=np.uint8)[None] * 15  # column code
    image[..., 1] = 7
    trimap = np.tile(np.array([9, 9, 9, 0, 84, 85, 128, 169, 170, 255, 0, 0, 0, 9, 9, 9, 9], np.uint8), (10, 1))
    alpha = np.full((10, 17), 51, np.uint8)
    item = _item(tmp_path, image, alpha, trimap)
    for seed in range(8):  # same size: every interpolation is the identity, whichever is drawn
        picture, matte, tri = load_item(item, PipelineOptions(size=10), random.Random(seed))
        assert torch.equal(picture[0, 0], torch.from_numpy(np.arange(3, 13) * 15 / 127.5 - 1).float())  # (17-10)//2 = 3
        assert torch.equal(picture[1], torch.full((10, 10), 7 / 127.5 - 1))
        assert torch.allclose(matte, torch.full((1, 10, 10), 0.2))
        assert tri[0, 0].tolist() == [0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 1.0, 0.0, 0.0, 0.0]  # raw 0 84 85 128 169 170 255 0


def test_interpolation_draws_official_independent_corrected_shared(tmp_path, monkeypatch):
    item = _item(tmp_path, np.zeros((40, 60, 3), np.uint8), _disc(40, 60))
    used = []
    original = Image.Image.resize

    def spy(self, size, resample=None, *args, **kwargs):
        used.append((self.mode, resample))
        return original(self, size, resample, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    pairs = []
    for independent in (True, False):
        for seed in range(40):
            used.clear()
            load_item(item, PipelineOptions(size=32, independent_interpolation=independent), random.Random(seed))
            modes = dict(used)
            assert modes["L"] == Image.Resampling.NEAREST  # the trimap
            pairs.append((independent, modes["RGB"], modes["F"]))
    official = [(i, a) for ind, i, a in pairs if ind]
    assert any(i != a for i, a in official) and {i for i, _ in official} == set(INTERPOLATIONS)
    assert all(i == a for ind, i, a in pairs if not ind)


def test_segmentation_alpha_is_quantised_before_resizing(tmp_path):
    alpha = np.tile(np.array([0, 127, 128, 255], np.uint8), (4, 1))
    for kind, expected in (("segmentation", [0, 0, 1, 1]), ("matting", [0, 127 / 255, 128 / 255, 1])):
        item = _item(tmp_path, np.zeros((4, 4, 3), np.uint8), alpha, kind=kind)
        _, matte, _ = load_item(item, PipelineOptions(size=4), random.Random(0))
        assert torch.allclose(matte[0, 0], torch.tensor(expected, dtype=torch.float32))


def test_random_crop_is_a_seeded_square_inside_the_image(tmp_path):
    image = np.zeros((20, 30, 3), np.uint8)
    image[..., 0] = np.arange(30, dtype=np.uint8)[None]
    image[..., 1] = np.arange(20, dtype=np.uint8)[:, None]
    item = _item(tmp_path, image, _disc(20, 30))
    options = PipelineOptions(size=8, random_crop=0.5)
    firsts = set()
    for seed in range(20):
        picture, _, _ = load_item(item, options, random.Random(seed))
        again, _, _ = load_item(item, options, random.Random(seed))
        assert torch.equal(picture, again)
        firsts.add((round(float(picture[0, 0, 0]), 4), round(float(picture[1, 0, 0]), 4)))
    assert len(firsts) > 5


def test_step_keys_cover_each_epoch_once():
    official = [step_keys(s, 3, 7, False, 0) for s in range(7)]
    flat = [k for keys in official for k in keys]
    assert flat[:7] == [(0, i) for i in range(7)] and flat[7:14] == [(1, i) for i in range(7)]
    shuffled = [k for s in range(7) for k in step_keys(s, 3, 7, True, 0)]
    assert sorted(i for e, i in shuffled if e == 0) == list(range(7))
    assert [i for e, i in shuffled if e == 0] != [i for e, i in shuffled if e == 1]


# --- bad input ----------------------------------------------------------------------------------------------------


def test_bad_datasets_name_the_file(tmp_path):
    root = _group_folders(tmp_path / "noalpha", {"cat": 2})
    (root / "cat" / "im1_alpha.png").unlink()
    with pytest.raises(ValueError, match=r"image '.*cat/im1.png' has no alpha: add im1_alpha.png"):
        discover_items(DatasetSource(root))
    root = _group_folders(tmp_path / "size", {"cat": 2})
    _save(root / "cat" / "im0_alpha.png", _disc(30, 60))
    with pytest.raises(ValueError, match=r"alpha '.*cat/im0_alpha.png' is 60x30 but its image is 60x40"):
        discover_items(DatasetSource(root))
    root = _group_folders(tmp_path / "corrupt", {"cat": 2})
    (root / "cat" / "im1.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"image '.*cat/im1.png' is not a readable image"):
        discover_items(DatasetSource(root))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"'.*empty' has neither image/ \+ alpha/ folders nor group folders"):
        discover_items(DatasetSource(tmp_path / "empty"))
    (tmp_path / "emptygroup" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"group folder '.*emptygroup/cat' holds no images"):
        discover_items(DatasetSource(tmp_path / "emptygroup"))
    (tmp_path / "icm" / "image").mkdir(parents=True)
    (tmp_path / "icm" / "alpha").mkdir()
    _save(tmp_path / "icm" / "image" / "x_1.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"image '.*icm/image/x_1.png' has no ground truth: add alpha/x_1.png"):
        discover_items(DatasetSource(tmp_path / "icm"))
    with pytest.raises(ValueError, match="no training dataset"):
        collect_items([], True)
