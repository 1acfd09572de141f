"""The Ray engine on a real local Ray cluster (2 CPU workers) with the tiny random-weight model: the same PNGs as the
single-process CLI, the reference encoded once, a restarted job that recomputes nothing, a corrupt image reported."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import ray
from PIL import Image
from test_engines import truncated_png, write_targets

from icm_model.cli import main
from icm_model.engines.job import MatteSettings
from icm_model.engines.loading import encode_references
from icm_model.engines.local import run_local
from icm_model.engines.ray_engine import ModelSpec, RayOptions, UNetCalls, run_ray

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"a.png": (40, 50), "b.png": (40, 50), "c.png": (40, 50), "d.jpg": (64, 30), "e.png": (40, 50)}
SETTINGS = MatteSettings(ensemble=2, seed=0)
OPTIONS = RayOptions(workers=2, gpus_per_worker=0)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs whose workers import this working tree."""
    ray.init(
        num_cpus=2,
        logging_level="WARNING",
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}},
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def job(standalone_models, tmp_path_factory):
    root, _ = standalone_models
    targets = tmp_path_factory.mktemp("ray_targets")
    write_targets(targets, TARGETS)
    spec = ModelSpec(str(root / "sd"), str(root / "icm.safetensors"), device="cpu", max_batch=4)
    return spec, [str(root / "ref.png")], [str(root / "mask.png")], targets


def locations(folder) -> list[str]:
    return sorted(str(p) for p in folder.iterdir())


def pngs(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_pngs_as_the_single_process_cli(cluster, standalone_models, job, tmp_path):
    targets = job[3]
    assert main(["matte", *standalone_models[1], "--targets", str(targets), "--out", str(tmp_path / "cli")]) == 0
    args = ["--targets", str(targets), "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]
    assert main(["matte", *standalone_models[1], *args, "--gpus-per-worker", "0", "--device", "cpu"]) == 0
    assert sorted(pngs(tmp_path / "ray")) == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    assert pngs(tmp_path / "ray") == pngs(tmp_path / "cli")


def test_the_reference_is_encoded_once(cluster, job, tmp_path):
    spec, references, masks, targets = job
    summary = run_ray(spec, references, masks, 200, locations(targets), str(tmp_path), SETTINGS, OPTIONS)
    assert summary.written == 5
    matting = spec.load()
    calls = UNetCalls(matting)
    context = encode_references(matting, [Path(references[0])], [Path(masks[0])], 200, 2, 0)
    assert summary.reference_unet_calls == calls.count > 0
    calls.count = 0
    run_local(matting, context, locations(targets), str(tmp_path / "local"), SETTINGS)
    assert summary.worker_unet_calls == calls.count  # the workers ran the targets' passes and nothing else


def test_a_restarted_job_recomputes_nothing_finished(cluster, job, tmp_path):
    spec, references, masks, targets = job
    first = run_ray(spec, references, masks, 200, locations(targets), str(tmp_path), SETTINGS, OPTIONS)
    written = pngs(tmp_path)
    stamps = {p.name: os.stat(p).st_mtime_ns for p in tmp_path.iterdir() if p.name != "d.png"}
    (tmp_path / "d.png").unlink()
    again = run_ray(spec, references, masks, 200, locations(targets), str(tmp_path), SETTINGS, OPTIONS)
    assert (again.written, again.skipped) == (1, 4)
    assert (first.worker_unet_calls, again.worker_unet_calls) == (4, 1)  # batches [a, b], [c], [d], [e]; then [d]
    assert {p.name: os.stat(p).st_mtime_ns for p in tmp_path.iterdir() if p.name != "d.png"} == stamps
    assert pngs(tmp_path) == written
    finished = run_ray(spec, references, masks, 200, locations(targets), str(tmp_path), SETTINGS, OPTIONS)
    assert (finished.written, finished.skipped, finished.reference_unet_calls) == (0, 5, 0)


def test_a_corrupt_image_is_reported_and_the_job_goes_on(cluster, standalone_models, job, tmp_path, capsys):
    folder = tmp_path / "targets"
    write_targets(folder, {"a.png": (40, 50), "c.png": (40, 50)})
    (folder / "b.png").write_bytes(b"\x89PNG not really")
    truncated_png(folder / "d.png")
    args = ["--targets", str(folder), "--out", str(tmp_path / "out"), "--engine", "ray", "--workers", "2"]
    assert main(["matte", *standalone_models[1], *args, "--gpus-per-worker", "0", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "2 targets matted, 0 already done, 2 failed, of 4" in out
    assert f"failed: {folder / 'b.png'}: target image" in out and f"failed: {folder / 'd.png'}: target image" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
    assert np.asarray(Image.open(tmp_path / "out" / "a.png")).shape == (40, 50)
