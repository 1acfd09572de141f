"""The single-process matting job: output names, restarts that skip finished targets, unreadable targets reported
by name while the rest goes on, atomic writes, the summary and the exit status."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from icm_model.cli import main
from icm_model.engines import local
from icm_model.engines.plan import Target, output_names, plan_batches
from icm_model.engines.storage import TEMPORARY_SUFFIX, Storage


def write_targets(folder, sizes: dict[str, tuple[int, int]], seed: int = 1) -> None:
    """Random RGB targets ``folder/<name>`` of the given (height, width)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / name)


def truncated_png(path, size=(40, 50)) -> None:
    """A PNG whose header reads (its size is known) but whose pixels are cut off."""
    write_targets(path.parent, {path.name: size}, seed=9)
    path.write_bytes(path.read_bytes()[:120])


def matte(models, targets, out, *extra) -> int:
    return main(["matte", *models[1], "--targets", str(targets), "--out", str(out), *extra])


def test_shared_stems_get_distinct_names():
    assert output_names(["x/a.jpg", "x/a.PNG", "x/b.jpg"]) == ["a_jpg", "a_png", "b"]
    with pytest.raises(ValueError, match="a_rgba.png"):
        output_names(["x/a.jpg", "x/a_rgba.png"])


def test_batches_are_consecutive_targets_of_one_size():
    sizes = [(4, 5), (4, 5), (4, 5), (6, 5), (4, 5)]
    targets = [Target(f"t{i}", f"t{i}", size) for i, size in enumerate(sizes)]
    assert [[t.name for t in batch] for batch in plan_batches(targets, 2)] == [["t0", "t1"], ["t2"], ["t3"], ["t4"]]


def test_targets_sharing_a_stem_keep_both_outputs(standalone_models, tmp_path):
    write_targets(tmp_path / "t", {"a.jpg": (40, 50), "a.png": (40, 50)})
    assert matte(standalone_models, tmp_path / "t", tmp_path / "out") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_jpg.png", "a_png.png"]
    one, two = (np.asarray(Image.open(tmp_path / "out" / n)) for n in ("a_jpg.png", "a_png.png"))
    assert not np.array_equal(one, two)  # the second target did not overwrite the first


def test_unreadable_targets_are_reported_and_the_rest_is_matted(standalone_models, tmp_path, capsys):
    write_targets(tmp_path / "t", {"a.png": (40, 50), "c.png": (40, 50)})
    (tmp_path / "t" / "b.png").write_bytes(b"not a png at all")
    truncated_png(tmp_path / "t" / "d.png")
    assert matte(standalone_models, tmp_path / "t", tmp_path / "out") == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
    out = capsys.readouterr().out
    assert "2 targets matted, 0 already done, 2 failed, of 4" in out
    assert f"failed: {tmp_path / 't' / 'b.png'}: target image" in out
    assert f"failed: {tmp_path / 't' / 'd.png'}: target image" in out


def test_a_restarted_job_skips_finished_targets(standalone_models, tmp_path, capsys, monkeypatch):
    write_targets(tmp_path / "t", {"a.png": (40, 50), "b.png": (40, 50), "c.png": (30, 60)})
    assert matte(standalone_models, tmp_path / "t", tmp_path / "out", "--foreground", "multiply") == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    (tmp_path / "out" / "b.png").unlink()  # as if the job had stopped before b's alpha was written
    (tmp_path / "out" / "c_rgba.png").unlink()
    stamps = {name: os.stat(tmp_path / "out" / name).st_mtime_ns for name in ("a.png", "a_rgba.png")}
    matted = []
    original = local.matte_batch
    monkeypatch.setattr(local, "matte_batch", lambda m, c, batch, *a: matted.append(batch) or original(m, c, batch, *a))
    capsys.readouterr()
    assert matte(standalone_models, tmp_path / "t", tmp_path / "out", "--foreground", "multiply") == 0
    assert [[target.name for target in batch] for batch in matted] == [["b"], ["c"]]  # not a
    assert "2 targets matted, 1 already done, 0 failed, of 3" in capsys.readouterr().out
    assert {name: os.stat(tmp_path / "out" / name).st_mtime_ns for name in stamps} == stamps
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == first


def test_an_interrupted_write_leaves_no_output(tmp_path, monkeypatch):
    def stop(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", stop)
    with pytest.raises(KeyboardInterrupt):
        Storage().write_atomic(str(tmp_path / "a.png"), b"png bytes")
    assert not (tmp_path / "a.png").exists()
    assert [p.name.endswith(TEMPORARY_SUFFIX) for p in tmp_path.iterdir()] == [True]


def test_pyarrow_locations_read_and_write_like_local_folders(standalone_models, tmp_path):
    """``file://`` goes through pyarrow's file systems, as ``s3://`` or ``gs://`` would on a cluster."""
    write_targets(tmp_path / "t", {"a.png": (40, 50), "b.jpg": (30, 20)})
    assert matte(standalone_models, tmp_path / "t", tmp_path / "local") == 0
    assert matte(standalone_models, f"file://{tmp_path / 't'}", f"file://{tmp_path / 'uri'}") == 0
    local, uri = ({p.name: p.read_bytes() for p in (tmp_path / n).iterdir()} for n in ("local", "uri"))
    assert sorted(uri) == ["a.png", "b.png"] and uri == local
