"""Pretrained starts: `swapgraph pretrain` writes a base (one generic decoder on many people's faces
pooled), `train --init` and `swap --init` start a pair from it; the refusals write nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers import animate_photo, packaged_photo, write_clip, write_photo_faceset
from swapgraph.nodes.swap_model import load_model, save_model
from swapgraph.runtime.files import folder_marker
from swapgraph.training.config import InitError, PretrainConfig, TrainConfig
from swapgraph.training.trainer import Trainer

FAST = ["--val-every", "10", "--checkpoint-every", "20", "--preview-every", "20", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """The base's facesets (24 faces of each packaged photo), and a pair's: the same two people,
    other faces (other shifts and light)."""
    root = tmp_path_factory.mktemp("people")
    return {"pool": [write_photo_faceset(root / "grace", "grace_hopper", faces=24),
                     write_photo_faceset(root / "astro", "astronaut", faces=24, seed=1)],
            "a": write_photo_faceset(root / "pair_grace", "grace_hopper", faces=24, seed=2),
            "b": write_photo_faceset(root / "pair_astro", "astronaut", faces=24, seed=3)}


@pytest.fixture(scope="module")
def base(people, tmp_path_factory) -> Path:
    """A base `pretrain` made: 40 steps of 4 faces (about 5 s on two cores)."""
    from swapgraph.cli.main import main

    out = tmp_path_factory.mktemp("base") / "base"
    assert main(["pretrain", *map(str, people["pool"]), "--out", str(out), "--steps", "40", "--batch-size", "4",
                 *FAST]) == 0
    return out


def pair_args(people, out: Path, *extra: str | Path, steps: int = 2) -> list:
    return ["train", "--a", people["a"], "--b", people["b"], "--out", out, "--batch-size", "2", "--steps", str(steps),
            *FAST, *extra]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


class TestPretrain:
    def test_pretrain_writes_a_base(self, people, base):
        info = json.loads((base / "model.json").read_text())
        assert info["base"] is True and info["identities"] == ["base"] and info["preset"] == "lite-64"
        assert [(f["path"], f["faces"]) for f in info["facesets"]] == [(str(p.resolve()), 24) for p in people["pool"]]
        assert info["training"]["steps"] == 40 and "init" not in info
        assert folder_marker(base)["kind"] == "model"
        assert {p.name for p in base.iterdir()} >= {"model.safetensors", "model.json", "checkpoint", "log.jsonl",
                                                   "loss.png", "preview.png", "previews"}
        logged = _records(base)
        assert [r["step"] for r in logged if "loss" in r] == list(range(1, 41))
        assert all("loss_base" in r for r in logged if "loss" in r)
        assert all("val_base" in r for r in logged if "val" in r)
        model, _ = load_model(base)  # a model folder like any other: safetensors and JSON
        assert list(model.decoders) == ["base"]
        from PIL import Image

        assert Image.open(base / "preview.png").size == (4 * 64, 2 * 64)  # the faces, their reconstructions

    def test_a_pair_starts_from_the_base_with_its_weights_and_a_lower_validation(self, people, base, tmp_path):
        trained, _ = load_model(base)
        started = Trainer(TrainConfig(a=people["a"], b=people["b"], out=tmp_path / "from_base", init=base, steps=1,
                                      device="cpu", quiet=True))
        for name, tensor in trained.encoder.state_dict().items():
            assert torch.equal(started.model.encoder.state_dict()[name], tensor), name
        for decoder in ("a", "b"):
            mine = started.model.decoders[decoder].state_dict()
            for name, tensor in trained.decoders["base"].state_dict().items():
                assert torch.equal(mine[name], tensor), (decoder, name)
        scratch = Trainer(TrainConfig(a=people["a"], b=people["b"], out=tmp_path / "scratch", steps=1, device="cpu",
                                      quiet=True))
        # measured 0.639-0.653 from bases of seeds 0-3 against 0.703 from scratch: the base knows faces
        assert started.validate()["val"] < 0.97 * scratch.validate()["val"]

    def test_the_pair_records_its_base_and_a_resume_keeps_it(self, cli, people, base, tmp_path):
        out = tmp_path / "pair"
        r = cli(*pair_args(people, out, "--init", base))
        assert r.code == 0, r.err
        init = {"path": str(base.resolve()), "sha256": _sha256(base / "model.safetensors")}
        info = json.loads((out / "model.json").read_text())
        assert info["init"] == init and info["identities"] == ["a", "b"] and "base" not in info
        r = cli(*pair_args(people, out, "--init", base, "--resume", steps=4))
        assert r.code == 2 and r.err == (f"error: --init {base} and --resume: give one (the checkpoint already holds "
                                         "the weights, and the base it started from)\n"), r.err
        r = cli(*pair_args(people, out, "--resume", steps=4))
        assert r.code == 0, r.err
        info = json.loads((out / "model.json").read_text())
        assert info["training"]["steps"] == 4 and info["init"] == init

    def test_a_pair_from_scratch_writes_no_base_fields(self, cli, people, tmp_path):
        r = cli(*pair_args(people, tmp_path / "m", steps=1))
        assert r.code == 0, r.err
        assert not {"base", "facesets", "init"} & set(json.loads((tmp_path / "m" / "model.json").read_text()))

    def test_resume_needs_the_same_pool_and_kind(self, cli, people, base, tmp_path):
        out = tmp_path / "base"
        shutil.copytree(base, out)
        grace, astro = people["pool"]
        r = cli("pretrain", astro, grace, "--out", out, "--resume", "--steps", "42", "--batch-size", "4", *FAST)
        assert r.code == 2 and r.err.count("\n") == 1, r.err
        assert "the checkpoint was pretrained on 2 facesets" in r.err and "in that order" in r.err
        r = cli(*pair_args(people, out, "--resume", steps=42))
        assert r.code == 2 and "its checkpoint is a base's (pretrain), not a pair's (train)" in r.err, r.err
        r = cli("pretrain", grace, astro, "--out", out, "--resume", "--steps", "42", "--batch-size", "4", *FAST)
        assert r.code == 0, r.err
        assert [r["step"] for r in _records(out) if "loss" in r] == list(range(1, 43))


def _refused(cli, out: Path, *args) -> str:
    r = cli(*args)
    assert r.code == 2 and r.err.count("\n") == 1 and r.err.startswith("error: "), (r.code, r.err)
    assert not out.exists()
    return r.err


class TestRefusals:
    """One line, exit code 2, nothing written."""

    def test_init_refusals(self, cli, people, base, tmp_path):
        out = tmp_path / "m"
        err = _refused(cli, out, *pair_args(people, out, "--init", people["a"]))
        assert f"--init {people['a'].resolve()}: not a model folder (no model.json)" in err
        err = _refused(cli, out, *pair_args(people, out, "--init", tmp_path / "missing"))
        assert "not a model folder" in err
        pair = tmp_path / "pair"
        assert cli(*pair_args(people, pair, steps=1)).code == 0
        err = _refused(cli, out, *pair_args(people, out, "--init", pair))
        assert "a pair (identities a, b), not a base" in err
        err = _refused(cli, out, *pair_args(people, out, "--init", base, "--preset", "classic-64"))
        assert "a base of preset lite-64, and this run trains classic-64; train with --preset lite-64" in err
        err = _refused(cli, out, *pair_args(people, out, "--init", base, "--render", "192"))
        assert "a base that renders 224 px, and this run renders 192; train with --render 224" in err
        err = _refused(cli, out, *pair_args(people, out, "--init", base, "--mask"))
        assert "a base without a mask channel; train without --mask" in err
        with pytest.raises(InitError, match="train with preset=lite-64"):  # the library names its keywords
            Trainer(TrainConfig(a=people["a"], b=people["b"], out=out, init=base, preset="hd-128", steps=1))
        assert not out.exists()

    def test_pretrain_refusals(self, cli, people, tmp_path):
        out = tmp_path / "base"
        few = [write_photo_faceset(tmp_path / photo, photo, faces=10) for photo in ("grace_hopper", "astronaut")]
        err = _refused(cli, out, "pretrain", *few, "--out", out, "--steps", "2", *FAST)
        assert "20 faces in 2 facesets; training needs at least 24 (16 are held out for validation)" in err
        grace = people["pool"][0]
        err = _refused(cli, out, "pretrain", grace, grace, "--out", out, "--steps", "2", *FAST)
        assert "the same faces as" in err
        (tmp_path / "empty").mkdir()
        err = _refused(cli, out, "pretrain", grace, tmp_path / "empty", "--out", out, "--steps", "2", *FAST)
        assert f"{tmp_path / 'empty'}: not a faceset" in err
        err = _refused(cli, out, "pretrain", *people["pool"], "--out", out, *FAST)
        assert "say when to stop" in err
        assert PretrainConfig(facesets=people["pool"], out=out).identities() == {"base": people["pool"]}


@pytest.fixture(scope="module")
def plate(tmp_path_factory) -> Path:
    """24 frames: the fewest faces training takes."""
    return write_clip(tmp_path_factory.mktemp("plate") / "astronaut.mp4",
                      animate_photo(packaged_photo("astronaut"), 24, size=(256, 256)))


def test_the_swap_node_refuses_a_base(base, plate):
    from swapgraph import api

    spec = api.load(api.presets()["swap.json"], [f"swap.model={base}", f"plate.path={plate}"])
    issues = [str(i) for i in api.validate(spec)]
    assert len(issues) == 1 and "a base (swapgraph pretrain), with one decoder" in issues[0], issues


def test_swap_refuses_a_base_that_does_not_fit(cli, people, base, plate, tmp_path):
    for extra, message in ((["--init", people["a"]], "not a model folder"),
                           (["--init", base, "--preset", "hd-128"], "a base of preset lite-64")):
        r = cli("swap", plate, people["b"], "--out", tmp_path / "shot.mp4", "--steps", "2", *extra)
        assert r.code == 2 and r.err.count("\n") == 1 and message in r.err and "--init" in r.err, r.err
        assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_swap_from_a_base_and_another_base_trains_again(people, base, plate, tmp_path):
    """About 45 s: one short swap from the base (the face material a faceset), a rerun that does
    nothing, and one from another base, which trains (and converts) again."""
    from swapgraph.pipeline.swap import swap

    out = tmp_path / "shot.mp4"
    result = swap(plate, people["b"], out, steps=2, init=base, quiet=True)
    assert result.stages["train all"] == "ran" and out.is_file()
    info = json.loads((result.models["all"] / "model.json").read_text())
    assert info["init"] == {"path": str(base.resolve()), "sha256": _sha256(base / "model.safetensors")}
    assert set(swap(plate, people["b"], out, steps=2, init=base, quiet=True).stages.values()) == {"skipped"}
    other = tmp_path / "other_base"  # the same base, one weight moved: another base
    model, base_info = load_model(base)
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    save_model(other, model, base_info)
    again = swap(plate, people["b"], out, steps=2, init=other, quiet=True)
    assert again.stages["extract plate"] == "skipped" and again.stages["train all"] == "ran"
    assert json.loads((again.models["all"] / "model.json").read_text())["init"]["path"] == str(other.resolve())
