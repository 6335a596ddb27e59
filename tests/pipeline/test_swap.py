"""``swapgraph swap PLATE FACE --out OUT`` on short clips made from the packaged photos:
the whole run, a rerun that does nothing, a changed param that redoes only its stages, a
kill -9 during training and the resume, a bank when the plate spans two buckets, and the
refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import (animate_photo, packaged_photo, stream_facts, turning_clip, write_clip, write_numbered_clip)
from swapgraph.pipeline.swap import swap

FRAMES = 40
STEPS = 20


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("swapclips")
    return {"plate": write_clip(folder / "astronaut.mp4", animate_photo(packaged_photo("astronaut"), FRAMES,
                                                                        size=(256, 256))),
            "face": write_clip(folder / "grace.mp4", animate_photo(packaged_photo("grace_hopper"), FRAMES,
                                                                   size=(256, 256), pan=-0.06), audio=False)}


@pytest.fixture(scope="module")
def base(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("swap") / "shot.mp4"
    return swap(clips["plate"], clips["face"], out, steps=STEPS, quiet=True)


def _model_steps(model: Path) -> int:
    return json.loads((model / "model.json").read_text())["training"]["steps"]


def test_a_whole_run(base):
    assert base.stages == {"extract plate": "ran", "extract face": "ran", "train all": "ran", "convert": "ran",
                           "qc": "ran"}
    assert base.counts == {"plate": {"frontal": FRAMES, "three_quarter": 0, "side": 0},
                           "face": {"frontal": FRAMES, "three_quarter": 0, "side": 0}}
    assert base.work == base.out.with_name("shot.work") and _model_steps(base.models["all"]) == STEPS
    facts = stream_facts(base.out)
    assert facts["frames"] == FRAMES and facts["metadata"]["synthetic_media"] == "true"
    sidecar = json.loads(base.out.with_name("shot.mp4.swapgraph.json").read_text())
    assert sidecar["stats"]["swap"]["faces_swapped"] == FRAMES
    assert base.qc["summary"]["coverage"] == 1.0
    for label, paths in base.files:  # every file it names is there
        for path in paths.replace(" (+ .png)", "").split(", "):
            assert Path(path).exists(), (label, path)


def test_a_rerun_does_nothing_and_a_changed_param_redoes_only_its_stages(base, clips, cli):
    args = ["swap", clips["plate"], clips["face"], "--out", base.out, "--steps", str(STEPS), "--quiet"]
    before = base.out.stat().st_mtime_ns, (base.models["all"] / "model.safetensors").stat().st_mtime_ns
    r = cli(*args)
    assert r.code == 0, r.err
    assert "nothing to do" in r.out and str(base.out) in r.out and "QC: coverage 1.000" in r.out
    assert (base.out.stat().st_mtime_ns, (base.models["all"] / "model.safetensors").stat().st_mtime_ns) == before
    # a graph param: converted again (and QC), not extracted, not trained
    r = cli(*args, "--set", "blend.mode=seamless")
    assert r.code == 0, r.err
    assert ("stages: extract plate skipped, extract face skipped, train all skipped, convert ran, qc ran"
            in r.out), r.out
    assert (base.models["all"] / "model.safetensors").stat().st_mtime_ns == before[1]
    assert json.loads(base.out.with_name("shot.mp4.swapgraph.json").read_text())["params"]["blend"]["mode"] == \
        "seamless"
    r = cli(*args, "--set", "blend.mode=seamless")
    assert "nothing to do" in r.out
    # the same clips under other names are the same inputs: keyed by content
    renamed = clips["plate"].with_name("renamed.mp4")
    shutil.copy(clips["plate"], renamed)
    r = cli("swap", renamed, clips["face"], "--out", base.out, "--steps", str(STEPS), "--quiet", "--set",
            "blend.mode=seamless")
    assert "extract plate skipped" in r.out and "train all skipped" in r.out


def test_a_kill_during_training_resumes_from_the_checkpoint(clips, tmp_path):
    """kill -9 mid-training; the rerun resumes the checkpoint. The face material is a
    folder of photos here (each extracted on its own, no landmark smoothing across them)."""
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    frames = animate_photo(packaged_photo("grace_hopper"), 30, size=(256, 256), pan=0.1)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(photos / f"grace_{i:02d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    work = tmp_path / "work"
    args = [sys.executable, "-m", "swapgraph.cli", "swap", str(clips["plate"]), str(photos),
            "--out", str(tmp_path / "shot.mp4"), "--work", str(work), "--steps", "40", "--checkpoint-every", "10"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = work / "model" / "checkpoint" / "checkpoint.safetensors"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), proc.communicate()
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "shot.mp4").exists()  # killed in training: no output
    said: list[str] = []
    result = swap(clips["plate"], photos, tmp_path / "shot.mp4", work=work, steps=40,
                  checkpoint_every=10, say=said.append)
    assert result.counts["face"]["frontal"] == 30  # a face in every photo
    assert result.stages["extract plate"] == "skipped" and result.stages["extract face"] == "skipped"
    assert result.stages["train all"] == "resumed"
    assert any("resumed at step" in line for line in said), said
    assert _model_steps(result.models["all"]) == 40 and result.out.is_file()


def test_a_plate_spanning_two_buckets_trains_a_bank_that_the_swap_uses(tmp_path):
    plate = write_clip(tmp_path / "plate.mp4", turning_clip("grace_hopper", 60, 320), audio=False)
    face = write_clip(tmp_path / "face.mp4", turning_clip("astronaut", 60, 320, turned_first=True), audio=False)
    result = swap(plate, face, tmp_path / "shot.mp4", steps=10, bank="auto", quiet=True)
    assert result.counts["plate"]["frontal"] >= 24 and result.counts["plate"]["three_quarter"] >= 24
    assert sorted(result.models) == ["frontal", "three_quarter"] and result.model.name == "bank"
    assert any("a bank of frontal, three_quarter" in note for note in result.notes)
    for bucket, model in result.models.items():
        assert json.loads((model / "model.json").read_text())["bucket"] == bucket
    stats = json.loads((tmp_path / "shot.mp4.swapgraph.json").read_text())["stats"]["swap"]
    assert stats["faces_frontal"] > 0 and stats["faces_three_quarter"] > 0  # the Swap node used both
    assert stats["faces_swapped"] == 60


def test_the_bank_decision():
    from swapgraph.pipeline.swap import plan_models

    spans = {"frontal": 31, "three_quarter": 29, "side": 0}
    covers = {"frontal": 30, "three_quarter": 30, "side": 0}
    assert plan_models(spans, covers, "auto")[0] == ["frontal", "three_quarter"]
    assert plan_models(spans, covers, "never")[0] == [None]
    # the face material lacks three-quarter faces: one model, and the plate's need is named
    lacking = {"frontal": 60, "three_quarter": 3, "side": 0}
    models, notes = plan_models(spans, lacking, "auto")
    assert models == [None] and any("needs three_quarter faces (29 of 60)" in n for n in notes)
    assert plan_models(spans, lacking, "always")[0] == ["frontal"]
    # a bucket under 15% of the plate is no span: one model
    assert plan_models({"frontal": 90, "three_quarter": 10, "side": 0}, covers, "auto")[0] == [None]


def _refused(cli, tmp_path, *args) -> str:
    r = cli("swap", *args)
    assert r.code == 2, (r.code, r.out, r.err)
    assert len(r.err.strip().splitlines()) == 1 and r.err.startswith("error: "), r.err
    assert not list(tmp_path.rglob("model.json")) and not list(tmp_path.rglob("checkpoint"))  # before any training
    return r.err


def test_refusals_come_before_any_training(base, clips, cli, tmp_path):
    nobody = write_numbered_clip(tmp_path / "nobody.mkv", 30, size=(256, 144))
    err = _refused(cli, tmp_path, clips["plate"], nobody, "--out", tmp_path / "a.mp4", "--steps", "5")
    assert "nobody.mkv" in err and "no face found in the face material" in err
    err = _refused(cli, tmp_path, nobody, clips["face"], "--out", tmp_path / "b.mp4", "--steps", "5")
    assert "nobody.mkv" in err and "no face found in the plate" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = _refused(cli, tmp_path, clips["plate"], clips["face"], "--out", tmp_path / "c.mp4", "--work",
                   blocker / "work", "--steps", "5")
    assert "--work" in err and "cannot write" in err
    short = write_clip(tmp_path / "short.mp4", animate_photo(packaged_photo("grace_hopper"), 12, size=(256, 256)))
    err = _refused(cli, tmp_path, clips["plate"], short, "--out", tmp_path / "d.mp4", "--steps", "5")
    assert "short.mp4" in err and "12 faces, too few to train" in err
    small = tmp_path / "small_faceset"  # a faceset as the face material, with too few faces
    shutil.copytree(base.facesets["face"], small)
    lines = (small / "faces.jsonl").read_text().splitlines()
    (small / "faces.jsonl").write_text("\n".join(lines[:10]) + "\n")
    err = _refused(cli, tmp_path, clips["plate"], small, "--out", tmp_path / "g.mp4", "--steps", "5")
    assert "small_faceset" in err and "10 faces, too few to train" in err
    err = _refused(cli, tmp_path, clips["plate"], tmp_path / "missing.mp4", "--out", tmp_path / "e.mp4")
    assert "missing.mp4" in err
    err = _refused(cli, tmp_path, clips["plate"], clips["face"], "--out", tmp_path / "f.mp4", "--set",
                   "blend.feather=3")
    assert "blend.feather" in err
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "f.mp4").exists()


def test_ctrl_c_during_training_stops_the_swap_with_exit_130_and_no_shot(clips, tmp_path):
    from helpers import interrupt_at_progress

    out = tmp_path / "shot.mp4"
    code, shown = interrupt_at_progress(["swap", clips["plate"], clips["face"], "--out", out, "--steps", "400",
                                         "--checkpoint-every", "5"], signal.SIGINT, when=r"step 10 ")
    assert code == 130, shown[-800:]
    last = shown.strip().splitlines()[-1].strip()
    assert last.startswith("error: swap cancelled while training lite-64") and "resumes it" in last, last
    assert not out.exists() and not out.with_name("shot.mp4.swapgraph.json").exists()
    assert (tmp_path / "shot.work" / "model" / "checkpoint" / "checkpoint.safetensors").is_file()
