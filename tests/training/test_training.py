"""Training the swap model: augmentation, losses, batch schedule, runs, refusals, resume."""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from swapgraph.training.augment import augment, random_warp
from swapgraph.training.config import TrainConfig, batch_at, parse_batch_schedule
from swapgraph.training.losses import reconstruction_loss
from swapgraph.training.trainer import Trainer
from swapgraph.runtime.errors import UsageError
from swapgraph.runtime.files import FOLDER_MARKER, folder_marker

from helpers import GRAPHS, SHARED_CLIPS, packaged_facesets, swapgraph_subprocess, write_photo_faceset


def extract_faceset(cli, clip: Path, out: Path, *sets: str) -> Path:
    r = cli("run", GRAPHS / "extract.json", "--set", f"plate.path={clip}", "--set", f"faceset.path={out}",
            "--set", "faces.workers=1", "--quiet", *sets)
    assert r.code == 0, r.err
    return out


@pytest.fixture(scope="module")
def facesets(tmp_path_factory):
    """Facesets of 60 frames each from animated packaged photos (grace_hopper, astronaut)."""
    return packaged_facesets(tmp_path_factory.mktemp("train"), 60)


def config(facesets, out: Path, **kw) -> TrainConfig:
    base = dict(a=facesets["grace"], b=facesets["astro"], out=out, preset="lite-64", device="cpu",
                batch_schedule=[(0, 8)], val_every=10, preview_every=50, checkpoint_every=20, quiet=True)
    base.update(kw)
    return TrainConfig(**base)


class TestAugment:
    def test_random_warp_moves_pixels_but_not_edges(self):
        g = torch.Generator().manual_seed(0)
        x = torch.rand(4, 3, 64, 64)
        y = random_warp(x, g)
        assert y.shape == x.shape and (y - x).abs().mean() > 0.01
        assert torch.allclose(y[..., 0, :], x[..., 0, :], atol=1e-5)  # the control grid's edges stay put

    def test_input_is_warped_target_is_not(self):
        g = torch.Generator().manual_seed(1)
        crops = torch.randint(0, 256, (5, 3, 256, 256), dtype=torch.uint8)
        masks = torch.zeros(5, 1, 256, 256, dtype=torch.uint8)
        masks[..., 80:180, 80:180] = 255
        features = torch.zeros_like(masks)
        features[..., 100:120, 90:170] = 255
        x, target, mask, feats = augment(crops, masks, 160, 64, g, features=features)
        assert x.shape == target.shape == (5, 3, 64, 64) and mask.shape == feats.shape == (5, 1, 64, 64)
        assert not torch.allclose(x, target)
        assert 0 <= x.min() and x.max() <= 1 and mask.max() > 0.9
        assert 0.02 < float(feats.mean()) < float(mask.mean())  # the feature band moved with the crop
        assert augment(crops, None, 160, 64, g)[2] is None  # no mask channel: nothing to warp
        x, target, _, _ = augment(crops, None, 224, 64, g, warp=0)
        assert torch.equal(x, target)  # no warp: the input is the target

    def test_feature_weight_counts_errors_on_features_more(self):
        target = torch.full((2, 3, 64, 64), 0.5)
        features = torch.zeros(2, 1, 64, 64)
        features[..., 16:26, 10:50] = 1
        on_features, elsewhere = target.clone(), target.clone()
        on_features[..., 16:26, 10:50] += 0.2
        elsewhere[..., 38:48, 10:50] += 0.2  # an error of the same size and area, off the features
        plain = [float(reconstruction_loss(p, target)) for p in (on_features, elsewhere)]
        assert plain[0] == pytest.approx(plain[1], rel=1e-3)
        weighted = [float(reconstruction_loss(p, target, None, features, 3.0)) for p in (on_features, elsewhere)]
        assert weighted[0] > 1.5 * weighted[1]
        sharp = target + 0.1 * (torch.rand_like(target) - 0.5)
        assert float(reconstruction_loss(target, sharp, detail_weight=1.0)) > float(reconstruction_loss(target, sharp))


class TestBatchSchedule:  # the plateau estimate has its own tests in test_plateau.py
    def test_batch_schedule(self):
        s = parse_batch_schedule("0:8,2000:16,5000:64")
        assert [batch_at(s, t) for t in (0, 1999, 2000, 4999, 5000, 10**6)] == [8, 8, 16, 16, 64, 64]
        for bad in ("8,16", "100:8", "0:0"):
            with pytest.raises(UsageError):
                parse_batch_schedule(bad)


def _records(out: Path) -> tuple[list[dict], list[dict]]:
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r for r in lines if "loss" in r], [r for r in lines if "val" in r]


class TestTraining:
    def test_lite_validation_falls_by_30_percent(self, facesets, tmp_path):
        summary = Trainer(config(facesets, tmp_path / "m", steps=100, batch_schedule=[(0, 16)], val_every=20)).run()
        train, val = _records(tmp_path / "m")
        assert [r["step"] for r in train] == list(range(1, 101))
        first, last = val[0]["val"], val[-1]["val"]
        assert last <= 0.7 * first, (first, last)
        assert summary["steps"] == 100 and "plateau" in summary
        info = json.loads((tmp_path / "m" / "model.json").read_text())
        assert info["preset"] == "lite-64" and info["training"]["steps"] == 100
        assert isinstance(info["training"]["still_falling"], bool) and "improvement_per_1000_se" in info["training"]
        assert (tmp_path / "m" / "loss.png").stat().st_size > 10_000
        previews = sorted((tmp_path / "m" / "previews").glob("*.png"))
        assert [p.name for p in previews] == ["step_0000050.png", "step_0000100.png"]
        from PIL import Image

        assert Image.open(previews[0]).size == (4 * 64, 6 * 64)  # 4 faces; A, A→A, A→B, B, B→B, B→A

    def test_schedule_changes_the_batch_and_not_the_score(self, facesets, tmp_path):
        trainer = Trainer(config(facesets, tmp_path / "m", steps=40, batch_schedule=[(0, 4), (30, 12)]))
        trainer.run()
        train, _ = _records(tmp_path / "m")
        assert [r["batch"] for r in train] == [4] * 30 + [12] * 10
        # the score is measured on fixed faces in fixed chunks: the batch size cannot move it
        before = trainer.validate()["val"]
        trainer.cfg.batch_schedule = [(0, 64)]
        assert trainer.validate()["val"] == before

    def test_until_plateau_stops_on_a_flat_curve_and_not_a_falling_one(self, facesets, tmp_path):
        trainer = Trainer(config(facesets, tmp_path / "m", until_plateau=True))
        rng = np.random.default_rng(0)
        steps = range(0, 4001, 50)
        # a fast drop then a slow tail: one exponential through it all said "within 1%" at step ~1000
        trainer.val_history = [(t, 0.05 + 0.2 * math.exp(-t / 150) + 0.03 * math.exp(-t / 4000) + rng.normal(0, 7e-4))
                               for t in steps]
        trainer.step = 4000
        assert not trainer.done()
        s = trainer.summary()
        assert s["still_falling"] and not s["flat"] and s["improvement_per_1000"] > 2 * s["improvement_per_1000_se"]
        assert s["plateau_band"][0] <= s["plateau"] <= s["plateau_band"][1] and s["plateau"] < s["val"]
        line = trainer.progress_line({"batch": 8, "loss": 0.1, "loss_a": 0.1, "loss_b": 0.1}, 100.0)
        assert "still falling" in line and "per 1000 steps" in line
        trainer.val_history = [(t, 0.06 + 0.2 * math.exp(-t / 200) + rng.normal(0, 7e-4)) for t in steps]
        assert trainer.done()
        assert trainer.summary()["flat"] and trainer.summary()["plateau_step"] == 4000
        trainer.val_history = trainer.val_history[:7]  # flat or not, never on fewer than 8 scores
        assert not trainer.done()

    def test_bucket_without_faces_is_a_usage_error(self, facesets, tmp_path):
        with pytest.raises(UsageError, match="0 faces in bucket side"):
            Trainer(config(facesets, tmp_path / "m", steps=5, bucket="side"))

    def test_cli_needs_a_stopping_rule(self, cli, facesets, tmp_path):
        r = cli("train", "--a", facesets["grace"], "--b", facesets["astro"], "--out", tmp_path / "m")
        assert r.code == 2 and r.err.startswith("error: say when to stop")
        r = cli("train", "--a", facesets["grace"], "--b", tmp_path / "nothing", "--out", tmp_path / "m", "--steps", "3")
        assert r.code == 2 and "not a faceset" in r.err

    def test_resume_needs_a_checkpoint_and_the_same_settings(self, facesets, tmp_path):
        with pytest.raises(UsageError, match="no checkpoint to resume from"):
            Trainer(config(facesets, tmp_path / "m", steps=5, resume=True))
        Trainer(config(facesets, tmp_path / "m", steps=2)).run()
        with pytest.raises(UsageError, match="resume with the same preset and mask"):
            Trainer(config(facesets, tmp_path / "m", steps=5, resume=True, mask=True))
        with pytest.raises(UsageError, match="resume with render 224"):
            Trainer(config(facesets, tmp_path / "m", steps=5, resume=True, render=192))

    def test_kill_9_then_resume_continues_without_gap_or_repeat(self, facesets, tmp_path):
        out = tmp_path / "m"
        args = ["train", "--a", facesets["grace"], "--b", facesets["astro"], "--out", out, "--preset", "lite-64",
                "--batch-size", "4", "--steps", "70", "--checkpoint-every", "20", "--val-every", "10",
                "--device", "cpu", "--quiet"]
        proc = swapgraph_subprocess(*args)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            train = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()] if (out / "log.jsonl").exists() else []
            if sum("loss" in r for r in train) >= 47:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "training ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = sum("loss" in json.loads(x) for x in (out / "log.jsonl").read_text().splitlines())
        assert killed_at >= 47
        proc = swapgraph_subprocess(*args, "--resume")
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        train, val = _records(out)
        assert [r["step"] for r in train] == list(range(1, 71))  # no gap, no repeat
        assert [r["step"] for r in val] == list(range(0, 71, 10))
        assert json.loads((out / "model.json").read_text())["training"]["steps"] == 70



class TestRefusalsLeaveNothing:
    """A refused run writes nothing: every input is checked before the model folder is made."""

    def test_a_folder_that_is_no_faceset(self, facesets, tmp_path, capsys):
        from swapgraph.cli.main import main

        photos = tmp_path / "photos"
        photos.mkdir()
        out = tmp_path / "models" / "m"
        code = main(["train", "--a", str(photos), "--b", str(facesets["astro"]), "--out", str(out), "--steps", "3"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {photos}: not a faceset"), err
        assert not (tmp_path / "models").exists()

    def test_a_missing_b(self, facesets, tmp_path, capsys):
        from swapgraph.cli.main import main

        code = main(["train", "--a", str(facesets["grace"]), "--out", str(tmp_path / "m"), "--steps", "3"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--b" in err, err
        assert not (tmp_path / "m").exists()

    @pytest.mark.parametrize("case, message", [
        ("empty faceset", "0 faces; training needs at least 24"),
        ("empty bucket", "0 faces in bucket side"),
        ("unknown bucket", "bucket 'upside_down': unknown"),
        ("no checkpoint", "no checkpoint to resume from"),
        ("render", "render 300: must lie between"),
        ("unknown preset", "preset 'giant-512': unknown"),
    ])
    def test_other_refusals(self, cli, facesets, tmp_path, case, message):
        empty = tmp_path / "empty"
        empty.mkdir()
        (empty / "faces.jsonl").write_text("")
        a = empty if case == "empty faceset" else facesets["grace"]
        extra = {"empty bucket": ["--bucket", "side"], "unknown bucket": ["--bucket", "upside_down"],
                 "no checkpoint": ["--resume"], "render": ["--render", "300"],
                 "unknown preset": ["--preset", "giant-512"]}.get(case, [])
        out = tmp_path / "m"
        r = cli("train", "--a", a, "--b", facesets["astro"], "--out", out, "--steps", "3", "--device", "cpu", *extra)
        assert r.code == 2 and r.err.count("\n") == 1 and message in r.err, r.err
        assert "--" not in r.err  # the library speaks of settings; flags are the CLI's business
        assert not out.exists()


@pytest.fixture(scope="module")
def photo_sets(tmp_path_factory):
    """Two facesets of 24 faces (the fewest `train`'s 16 held-out faces allow), without face detection."""
    root = tmp_path_factory.mktemp("photo_sets")
    return {"a": write_photo_faceset(root / "grace", "grace_hopper", faces=24),
            "b": write_photo_faceset(root / "astro", "astronaut", faces=24, seed=1)}


def train_args(sets, out: Path, *extra: str | Path, steps: int = 2) -> list:
    return ["train", "--a", sets["a"], "--b", sets["b"], "--out", out, "--batch-size", "2", "--steps", str(steps),
            "--val-every", "2", "--checkpoint-every", "2", "--preview-every", "2", "--device", "cpu", "--quiet", *extra]


@pytest.fixture(scope="module")
def trained(photo_sets, tmp_path_factory):
    """A model folder `train` made (2 steps, with its checkpoint); tests copy it."""
    from swapgraph.cli.main import main

    out = tmp_path_factory.mktemp("trained") / "m"
    assert main([str(a) for a in train_args(photo_sets, out)]) == 0
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class TestTheModelFolder:
    """Training never destroys a model, nor a file it did not write."""

    def test_a_users_folder_survives_train_and_force(self, cli, photo_sets, tmp_path):
        mine = tmp_path / "mine"
        mine.mkdir()
        (mine / "notes.txt").write_text("my notes")
        (mine / "model.json").write_text(json.dumps({"preset": "lite-64", "size": 64}))  # not swapgraph's
        before = snapshot(mine)
        for extra in ([], ["--force"], ["--resume"]):
            r = cli(*train_args(photo_sets, mine, *extra))
            assert r.code == 2 and r.err.count("\n") == 1, r.err
            assert "'model.json' and 1 more, which swapgraph's trainer did not write" in r.err
            assert "choose another --out" in r.err
        assert snapshot(mine) == before and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
        (tmp_path / "file").write_text("x")
        r = cli(*train_args(photo_sets, tmp_path / "file"))
        assert r.code == 2 and r.err.count("\n") == 1 and "is a file" in r.err, r.err
        r = cli(*train_args(photo_sets, photo_sets["a"]))  # a faceset is nobody's model folder
        assert r.code == 2 and "is also an input" in r.err, r.err

    def test_a_model_folder_trained_before_folders_were_marked_resumes(self, cli, photo_sets, trained, tmp_path):
        out = tmp_path / "old"
        shutil.copytree(trained, out)
        (out / FOLDER_MARKER).unlink()  # as a folder from before the marker
        r = cli(*train_args(photo_sets, out))
        assert r.code == 2 and "--resume to continue it" in r.err, r.err  # still the trainer's: a model to keep
        r = cli(*train_args(photo_sets, out, "--resume", steps=3))  # it stopped at 2
        assert r.code == 0, r.err
        assert folder_marker(out)["kind"] == "model"

    def test_a_second_run_is_refused_and_force_replaces_only_the_trainers_files(self, cli, photo_sets, trained,
                                                                               tmp_path):
        out = tmp_path / "m"
        shutil.copytree(trained, out)
        marker = folder_marker(out)
        assert marker["kind"] == "model" and set(marker["files"]) == {p.name for p in out.iterdir()} - {FOLDER_MARKER}
        assert set(marker["files"]) == {"model.safetensors", "model.json", "log.jsonl", "loss.png", "preview.png",
                                        "previews", "checkpoint"}
        before = snapshot(out)
        r = cli(*train_args(photo_sets, out))
        assert r.code == 2 and r.err.count("\n") == 1, r.err
        assert r.err == (f"error: {out}: holds a trained model of an earlier run; --resume to continue it, --force "
                         "to replace it, or another --out\n")
        assert snapshot(out) == before
        (out / "previews" / "mine.png").write_bytes(b"a picture of mine")  # inside the trainer's folder: left alone
        old_previews = sorted(p.name for p in (out / "previews").glob("step_*.png"))
        r = cli(*train_args(photo_sets, out, "--force", steps=1))
        assert r.code == 0, r.err
        assert (out / "previews" / "mine.png").read_bytes() == b"a picture of mine"
        assert sorted(p.name for p in (out / "previews").glob("step_*.png")) == ["step_0000001.png"] != old_previews
        train, _ = _records(out)
        assert [r["step"] for r in train] == [1]  # a new log, a new model
        assert json.loads((out / "model.json").read_text())["training"]["steps"] == 1
        (out / "notes.txt").write_text("mine")
        r = cli(*train_args(photo_sets, out, "--force"))
        assert r.code == 2 and "'notes.txt'" in r.err and (out / "notes.txt").read_text() == "mine", r.err

    def test_an_empty_folder_is_fine(self, cli, photo_sets, tmp_path):
        (tmp_path / "m").mkdir()
        r = cli(*train_args(photo_sets, tmp_path / "m", steps=1))
        assert r.code == 0, r.err
        assert folder_marker(tmp_path / "m")["kind"] == "model"

    def test_resume_with_a_and_b_swapped_is_refused(self, cli, photo_sets, trained, tmp_path):
        out = tmp_path / "m"
        shutil.copytree(trained, out)
        before = snapshot(out)
        swapped = {"a": photo_sets["b"], "b": photo_sets["a"]}
        r = cli(*train_args(swapped, out, "--resume", steps=4))
        assert r.code == 2 and r.err.count("\n") == 1, r.err
        assert (f"the checkpoint was trained with --a {photo_sets['a']} --b {photo_sets['b']}" in r.err
                and "the other way round" in r.err)
        with pytest.raises(UsageError, match=f"trained with a={photo_sets['a']} b={photo_sets['b']}"):
            Trainer(TrainConfig(a=swapped["a"], b=swapped["b"], out=out, steps=4, resume=True, device="cpu"))
        changed = tmp_path / "changed"
        shutil.copytree(photo_sets["a"], changed)
        with (changed / "faces.jsonl").open("a") as f:  # one face more
            f.write((changed / "faces.jsonl").read_text().splitlines()[0] + "\n")
        r = cli(*train_args({"a": changed, "b": photo_sets["b"]}, out, "--resume", steps=4))
        assert r.code == 2 and f"{changed} holds other faces" in r.err, r.err
        assert snapshot(out) == before

    def test_a_truncated_checkpoint_is_one_line(self, cli, photo_sets, trained, tmp_path):
        out = tmp_path / "m"
        shutil.copytree(trained, out)
        ckpt = out / "checkpoint" / "checkpoint.safetensors"
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
        r = cli(*train_args(photo_sets, out, "--resume", steps=4))
        assert r.code == 2 and r.err.count("\n") == 1, r.err
        assert r.err.startswith(f"error: {ckpt}: truncated or damaged") and "--force" in r.err

    def test_the_temporaries_a_kill_leaves_are_the_trainers(self, cli, photo_sets, trained, tmp_path):
        out = tmp_path / "m"
        shutil.copytree(trained, out)
        left = [out / ".model.partial-99999-0badf00d.safetensors", out / ".model.json.replaced-99999-0badf00d",
                out / "checkpoint" / ".checkpoint.partial-99999-0badf00d.safetensors"]
        for path in left:
            path.write_bytes(b"half a file")
        r = cli(*train_args(photo_sets, out, "--resume", steps=3))
        assert r.code == 0, r.err
        assert not any(p.exists() for p in left)
        assert set(folder_marker(out)["files"]) == {p.name for p in out.iterdir()} - {FOLDER_MARKER}

    @pytest.mark.parametrize("case", ["wrong size", "missing", "random bytes", "truncated"])
    def test_a_bad_crop_is_one_line_naming_it(self, photo_sets, tmp_path, capfd, case):
        import cv2

        from swapgraph.cli.main import main

        faceset = tmp_path / "faceset"
        shutil.copytree(photo_sets["a"], faceset)
        crop = sorted(faceset.glob("*.png"))[5]
        if case == "wrong size":
            cv2.imwrite(str(crop), np.zeros((128, 128, 3), np.uint8))
        elif case == "missing":
            crop.unlink()
        elif case == "random bytes":
            crop.write_bytes(np.random.default_rng(0).bytes(3000))
        else:
            crop.write_bytes(crop.read_bytes()[:2000])
        out = tmp_path / "m"
        capfd.readouterr()
        code = main([str(a) for a in train_args({"a": faceset, "b": photo_sets["b"]}, out)])
        err = capfd.readouterr().err  # OpenCV warns on the file descriptor, not through sys.stderr
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: {crop}: "), err
        assert "128x128" in err if case == "wrong size" else True
        assert not out.exists()

    @pytest.mark.parametrize("render", [10**9, -5])
    def test_a_model_json_with_an_absurd_render_is_refused_when_loaded(self, trained, tmp_path, render):
        from swapgraph.nodes.swap_model import ModelError, load_model

        out = tmp_path / "m"
        shutil.copytree(trained, out)
        info = json.loads((out / "model.json").read_text())
        (out / "model.json").write_text(json.dumps({**info, "render": render}))
        with pytest.raises(ModelError, match=f"render {render}: must lie between"):
            load_model(out)

    def test_a_second_run_is_refused_while_the_first_trains_and_ctrl_c_keeps_its_checkpoint(
            self, cli, photo_sets, tmp_path):
        out = tmp_path / "m"
        first = swapgraph_subprocess(*train_args(photo_sets, out, "--checkpoint-every", "1000", "--val-every",
                                                 "1000", "--preview-every", "1000", steps=1000))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None and len(_logged(out)) < 3:
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()[1]
        r = cli(*train_args(photo_sets, out, "--resume"))  # another process, the same --out: refused at once
        assert r.code == 2 and r.err.count("\n") == 1 and f"process {first.pid} on " in r.err, r.err
        assert "is writing this output now" in r.err
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
        assert first.returncode == 130, err
        step = sum("loss" in rec for rec in _logged(out))
        assert err.splitlines()[-1] == (f"error: cancelled at step {step}; the checkpoint in {out} resumes it "
                                        f"(--resume), and {out / 'model.safetensors'} holds the model so far"), err
        assert json.loads((out / "model.json").read_text())["training"]["steps"] == step
        r = cli(*train_args(photo_sets, out, "--resume", steps=step + 2))
        assert r.code == 0, r.err
        train, _ = _records(out)
        assert [rec["step"] for rec in train] == list(range(1, step + 3))  # no gap, no repeat


def _logged(out: Path) -> list[dict]:
    try:
        lines = (out / "log.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.endswith("}")]



@pytest.mark.real
def test_real_footage_validation_falls_by_30_percent(cli, tmp_path):
    sets = {}
    for name in ("d18", "d19"):
        sets[name] = extract_faceset(cli, SHARED_CLIPS / f"{name}.mp4", tmp_path / name, "--frames", "0-119")
    cfg = TrainConfig(a=sets["d18"], b=sets["d19"], out=tmp_path / "m", preset="lite-64", device="cpu",
                      batch_schedule=[(0, 16)], steps=100, val_every=20, preview_every=1000, checkpoint_every=1000,
                      quiet=True)
    Trainer(cfg).run()
    _, val = _records(tmp_path / "m")
    assert val[-1]["val"] <= 0.7 * val[0]["val"], (val[0]["val"], val[-1]["val"])
