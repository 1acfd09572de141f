"""The dataset evaluator: group rule, seeded reference choice, and ``python -m icm_model evaluate`` end to end."""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icm_model.cli import main
from icm_model.decoder.checkpoint import save_decoder
from icm_model.evaluation.evaluate import (
    PANEL_SIZE,
    Sample,
    choose_references,
    discover_dataset,
    group_of,
    plan_evaluation,
)
from icm_model.evaluation.metrics import sad
from icm_model.evaluation.report import SHEET_GAP, SHEET_LABEL_HEIGHT, markdown_table
from icm_model.random_models import random_decoder, write_diffusers_folder

# (height, width) of every image; the "cat" group has trimaps, "lone" is a single-image group.
SIZES = {
    "cat_01": (96, 128),
    "cat_02": (120, 80),
    "cat_03": (64, 100),
    "dog-1": (200, 150),
    "dog-2": (90, 90),
    "dog-3": (150, 200),
    "lone_1": (80, 80),
}
WITH_TRIMAP = ("cat_01", "cat_02", "cat_03")
TARGETS_PER_GROUP = 2
METRICS = ("sad", "mse", "grad", "conn")


def _blob_alpha(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A soft disc in 0..1 (radius 0.3-0.4 of the short side, edge 6 px wide) around a random centre."""
    radius = rng.uniform(0.3, 0.4) * min(height, width)
    cy = rng.uniform(radius, height - radius)
    cx = rng.uniform(radius, width - radius)
    y, x = np.mgrid[:height, :width]
    distance = np.hypot(y - cy, x - cx)
    return np.clip((radius - distance) / 6.0 + 0.5, 0.0, 1.0)


def _trimap(alpha: np.ndarray) -> np.ndarray:
    return np.where(alpha >= 0.999, 255, np.where(alpha <= 0.001, 0, 128)).astype(np.uint8)


def _write_dataset(root: Path, sizes: dict[str, tuple[int, int]], trimaps: tuple[str, ...] = ()) -> Path:
    rng = np.random.default_rng(0)
    for folder in ("image", "alpha", "trimap"):
        (root / folder).mkdir(parents=True)
    for name, (height, width) in sizes.items():
        alpha = _blob_alpha(height, width, rng)
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(root / "image" / f"{name}.jpg")
        Image.fromarray((alpha * 255).round().astype(np.uint8)).save(root / "alpha" / f"{name}.png")
        if name in trimaps:
            Image.fromarray(_trimap(alpha)).save(root / "trimap" / f"{name}.png")
    (root / "image" / "README.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaluate_models")
    write_diffusers_folder(root / "sd", "tiny")
    save_decoder(random_decoder(), root / "icm.safetensors")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("evaluate_data") / "icm", SIZES, WITH_TRIMAP)


def _args(models: Path, dataset: Path, out: Path, *extra: str) -> list[str]:
    return [
        "evaluate",
        "--sd",
        str(models / "sd"),
        "--icm",
        str(models / "icm.safetensors"),
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--ensemble",
        "1",
        *extra,
    ]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def first_run(models, dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evaluate_out") / "seed0"
    assert main(_args(models, dataset, out, "--seed", "0", "--worst", "3", "--save-alpha")) == 0
    return out


# --- the group rule and the reference choice ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "group"),
    [
        ("cat_01", "cat"),
        ("cat-2", "cat"),
        ("cat3", "cat"),
        ("cat", "cat"),
        ("my_cat_007", "my_cat"),
        ("cat_01_02", "cat_01"),
        ("a-b_12", "a-b"),
        ("2019", "2019"),
        ("Cat_01", "Cat"),
    ],
)
def test_group_rule(stem, group):
    assert group_of(stem) == group


def test_reference_choice_is_fixed_by_seed_group_and_names():
    names = [f"cat_{i:02d}" for i in range(1, 9)]
    chosen = choose_references("cat", names, 3, seed=7)
    assert len(chosen) == 3 and chosen == sorted(chosen) and set(chosen) <= set(names)
    shuffled = names[:]
    random.Random(1).shuffle(shuffled)
    assert choose_references("cat", shuffled, 3, seed=7) == chosen
    draws = {tuple(choose_references("cat", names, 3, seed)) for seed in range(20)}
    assert len(draws) > 1
    assert choose_references("cat", names[:3], 4, seed=0) != names[:3]  # capped at size - 1
    assert len(choose_references("cat", names[:3], 4, seed=0)) == 2
    with pytest.raises(ValueError, match="group 'cat' has 1 image"):
        choose_references("cat", names[:1], 1, seed=0)


def test_plan_splits_groups_and_skips_single_images():
    samples = [Sample(name, group_of(name), Path(name), Path(name), None) for name in SIZES]
    plan = plan_evaluation(samples[::-1], references=1, seed=3)
    assert [group.name for group in plan.groups] == ["cat", "dog"]
    assert plan.skipped == ("lone",)
    assert plan.target_count == 2 * TARGETS_PER_GROUP
    for group in plan.groups:
        names = {s.name for s in group.references + group.targets}
        assert names == {name for name in SIZES if group_of(name) == group.name}
        assert list(group.reference_names) == choose_references(group.name, names, 1, seed=3)
    with pytest.raises(ValueError, match="no group has two or more images"):
        plan_evaluation(samples[-1:], references=1, seed=0)


def test_discover_reads_the_layout(dataset):
    samples = discover_dataset(dataset)
    assert [s.name for s in samples] == sorted(SIZES)
    assert {s.name for s in samples if s.trimap is not None} == set(WITH_TRIMAP)
    assert all(s.alpha.parent.name == "alpha" for s in samples)


def test_markdown_table_rounds_and_escapes():
    assert markdown_table(("a", "b"), [("x|y", 0.123456)]) == "| a | b |\n|---|---|\n| x\\|y | 0.1235 |"


# --- the command line, end to end -----------------------------------------------------------------------------


def test_evaluate_writes_tables_report_and_sheet(first_run):
    for name in ("per_image.csv", "per_group.csv", "overall.csv", "report.md", "worst.png"):
        assert (first_run / name).is_file(), name
    rows = _rows(first_run / "per_image.csv")
    assert len(rows) == 2 * TARGETS_PER_GROUP
    assert {row["group"] for row in rows} == {"cat", "dog"}
    for row in rows:
        assert all(np.isfinite(float(row[m])) and float(row[m]) >= 0 for m in METRICS)
        assert (int(row["height"]), int(row["width"])) == SIZES[row["image"]]
        assert row["region"] == ("trimap unknown" if row["image"] in WITH_TRIMAP else "whole image")
        assert row["image"] not in row["references"].split()
    groups = {row["group"]: row for row in _rows(first_run / "per_group.csv")}
    assert set(groups) == {"cat", "dog"}
    for name, group in groups.items():
        references = group["references"].split()
        assert references == choose_references(name, [n for n in SIZES if group_of(n) == name], 1, seed=0)
        assert (group["images"], group["targets"]) == ("3", str(TARGETS_PER_GROUP))
        assert all(row["references"] == group["references"] for row in rows if row["group"] == name)
        members = [float(row["sad"]) for row in rows if row["group"] == name]
        assert float(group["sad"]) == pytest.approx(np.mean(members), rel=1e-12)


def test_overall_is_the_mean_over_target_images(first_run):
    rows = _rows(first_run / "per_image.csv")
    (overall,) = _rows(first_run / "overall.csv")
    assert (overall["groups"], overall["skipped_groups"], overall["targets"]) == ("2", "1", str(len(rows)))
    for metric in METRICS:
        assert float(overall[metric]) == pytest.approx(np.mean([float(row[metric]) for row in rows]), rel=1e-12)


def test_metrics_are_taken_over_the_right_region(first_run, dataset):
    """Recomputes SAD from the saved 8-bit alphas: equal up to their rounding (at most 0.5/255 per pixel)."""
    for row in _rows(first_run / "per_image.csv"):
        name = row["image"]
        predicted = np.asarray(Image.open(first_run / "alpha" / f"{name}.png"), dtype=np.float64)
        truth = np.asarray(Image.open(dataset / "alpha" / f"{name}.png"), dtype=np.float64)
        trimap = np.asarray(Image.open(dataset / "trimap" / f"{name}.png")) if name in WITH_TRIMAP else None
        pixels = predicted.size if trimap is None else np.count_nonzero(trimap == 128)
        assert float(row["sad"]) == pytest.approx(sad(predicted, truth, trimap), abs=pixels * 0.5 / 255 / 1000 + 1e-9)


def test_report_records_settings_and_puts_overall_first(first_run, models):
    report = (first_run / "report.md").read_text()
    for expected in (
        str(models / "icm.safetensors"),
        "| timestep | 200 |",
        "| ensemble | 1 |",
        "| seed | 0 |",
        "| references | 1 per group",
        "| device | cpu |",
        "skipped 1 single-image group(s)",
        "`lone`",
        "worst.png",
    ):
        assert expected in report, expected
    assert report.index("## Overall") < report.index("## Per group") < report.index("## Per image")


def test_worst_sheet_has_one_row_per_worst_image(first_run):
    width, height = PANEL_SIZE
    sheet = Image.open(first_run / "worst.png")
    assert sheet.size == (
        3 * width + 4 * SHEET_GAP,
        2 * SHEET_GAP + SHEET_LABEL_HEIGHT + 3 * (SHEET_LABEL_HEIGHT + height + SHEET_GAP),
    )


def test_same_seed_same_tables(first_run, models, dataset, tmp_path, capsys):
    out = tmp_path / "again"
    assert main(_args(models, dataset, out, "--seed", "0", "--worst", "3")) == 0
    for name in ("per_image.csv", "per_group.csv", "overall.csv"):
        assert (out / name).read_bytes() == (first_run / name).read_bytes(), name
    captured = capsys.readouterr()
    assert "4 targets in 2 groups" in captured.out
    assert "warning: skipping single-image groups (no reference): lone" in captured.err


def test_another_seed_can_choose_other_references(first_run, models, dataset, tmp_path):
    cats = [name for name in SIZES if group_of(name) == "cat"]
    seed = next(
        s for s in range(1, 100) if choose_references("cat", cats, 1, s) != choose_references("cat", cats, 1, 0)
    )
    out = tmp_path / "other"
    assert main(_args(models, dataset, out, "--seed", str(seed), "--worst", "0")) == 0
    before = {row["group"]: row["references"] for row in _rows(first_run / "per_group.csv")}
    after = {row["group"]: row["references"] for row in _rows(out / "per_group.csv")}
    assert after["cat"] != before["cat"]
    assert after["cat"].split() == choose_references("cat", cats, 1, seed)
    assert not (out / "worst.png").exists()


def test_references_are_capped_at_group_size_minus_one(models, dataset, tmp_path):
    assert main(_args(models, dataset, tmp_path, "--references", "4", "--worst", "0")) == 0
    for group in _rows(tmp_path / "per_group.csv"):
        assert (len(group["references"].split()), group["targets"]) == (2, "1")
    assert "| references | 4 per group" in (tmp_path / "report.md").read_text()


# --- bad datasets and options ---------------------------------------------------------------------------------


def _rename_cat_02_to_dog_1(root: Path) -> None:
    (root / "image" / "cat_02.jpg").rename(root / "image" / "dog_1.jpg")
    (root / "alpha" / "cat_02.png").rename(root / "alpha" / "dog_1.png")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda root: (root / "alpha" / "cat_02.png").unlink(), "has no ground truth: add alpha/cat_02.png"),
        (
            lambda root: Image.new("L", (80, 63)).save(root / "alpha" / "cat_02.png"),
            "is 80x63 but its image is 80x64",
        ),
        (lambda root: Image.new("L", (81, 64)).save(root / "trimap" / "cat_01.png"), "cat_01.png' is 81x64"),
        (lambda root: (root / "alpha" / "cat_02.png").rename(root / "image" / "cat_02.png"), "share a stem"),
        (_rename_cat_02_to_dog_1, "no group has two or more images (2 single-image groups)"),
        (lambda root: shutil.rmtree(root / "alpha"), "has no alpha/ folder"),
    ],
)
def test_bad_datasets_exit_2_with_a_clear_message(models, tmp_path, capsys, change, message):
    root = _write_dataset(tmp_path / "bad", {"cat_01": (64, 80), "cat_02": (64, 80)}, trimaps=("cat_01",))
    change(root)
    assert main(_args(models, root, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_bad_options_and_missing_dataset(models, dataset, tmp_path, capsys):
    assert main(_args(models, dataset, tmp_path / "out", "--references", "5")) == 2
    assert "references must be 1 to 4" in capsys.readouterr().err
    assert main(_args(models, tmp_path / "nowhere", tmp_path / "out")) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_an_unusable_reference_alpha_names_the_group_and_image(models, tmp_path, capsys):
    root = _write_dataset(tmp_path / "data", {"cat_01": (64, 80), "cat_02": (64, 80)})
    for name in ("cat_01", "cat_02"):
        Image.new("L", (80, 64)).save(root / "alpha" / f"{name}.png")
    assert main(_args(models, root, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "group 'cat': reference" in err and "is empty" in err
