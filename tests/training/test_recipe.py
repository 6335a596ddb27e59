"""The recipe's knobs of issue 22: the learning-rate schedule, Adam's beta1, ICNR
initialisation and the study's presets, as a run takes and records them."""

from __future__ import annotations

import json
import math

import pytest
import torch

from swapgraph.nodes.swap_model import PRESETS, ModelInfo, SwapModel, icnr_, load_model, save_model
from swapgraph.training.config import LR_FLOOR, TrainConfig, lr_factor
from swapgraph.training.trainer import Trainer

from helpers import write_photo_faceset


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe_sets")
    return {"a": write_photo_faceset(root / "grace", "grace_hopper", faces=24),
            "b": write_photo_faceset(root / "astro", "astronaut", faces=24, seed=1)}


def _config(sets, out, **kw) -> TrainConfig:
    base = dict(a=sets["a"], b=sets["b"], out=out, device="cpu", batch_schedule=[(0, 2)], val_every=5,
                preview_every=1000, checkpoint_every=5, quiet=True)
    return TrainConfig(**{**base, **kw})


def _steps(out) -> list[dict]:
    return [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "loss" in r]


class TestSchedule:
    def test_warmup_rises_linearly_then_holds(self):
        assert [lr_factor(s, None, 4, "none") for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
        assert lr_factor(0, None, 0, "none") == 1.0

    def test_cosine_falls_from_one_to_the_floor_over_the_budget(self):
        f = [lr_factor(100, p, 0, "cosine") for p in (0.0, 0.5, 1.0, 2.0)]
        assert f[0] == 1.0 and math.isclose(f[1], (1 + LR_FLOOR) / 2) and math.isclose(f[2], LR_FLOOR)
        assert f[3] == f[2]  # a run past its budget (a resumed one) stays at the floor
        assert lr_factor(100, None, 0, "cosine") == 1.0  # --until plateau: no budget, no decay

    def test_a_run_applies_and_logs_the_schedule(self, sets, tmp_path):
        out = tmp_path / "m"
        Trainer(_config(sets, out, steps=40, lr=3e-4, lr_warmup=4, lr_decay="cosine", beta1=0.9)).run()
        logged = [r["lr"] for r in _steps(out)]
        expected = [3e-4 * lr_factor(s, s / 40, 4, "cosine") for s in range(40)]
        assert logged == pytest.approx(expected, rel=1e-5)  # the log keeps 6 significant figures
        assert logged[0] < logged[3] and logged[-1] < logged[4]
        recipe = json.loads((out / "model.json").read_text())["recipe"]
        assert recipe == {**recipe, "lr": 3e-4, "lr_warmup": 4, "lr_decay": "cosine", "beta1": 0.9, "icnr": True}

    def test_the_default_warmup_is_cut_to_a_tenth_of_a_short_run(self, sets, tmp_path):
        out = tmp_path / "m"
        Trainer(_config(sets, out, steps=20)).run()  # the defaults: 100 steps of warm-up, cosine, 2e-4
        logged = [r["lr"] for r in _steps(out)]
        assert logged == pytest.approx([2e-4 * lr_factor(s, s / 20, 2, "cosine") for s in range(20)], rel=1e-5)
        assert logged[1] > 0.9 * 2e-4  # risen after two steps, not after 100

    @pytest.mark.parametrize("kw, says", [({"lr": 0.0}, "lr must be positive"), ({"beta1": 1.0}, "beta1 in [0, 1)"),
                                          ({"lr_warmup": -1}, "lr_warmup 0 or more"),
                                          ({"lr_decay": "step"}, "lr_decay 'step': unknown")])
    def test_bad_settings_are_refused_before_anything_is_written(self, sets, tmp_path, kw, says):
        from swapgraph.runtime.errors import UsageError

        with pytest.raises(UsageError, match=says.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            Trainer(_config(sets, tmp_path / "m", steps=2, **kw))
        assert not (tmp_path / "m").exists()


class TestIcnr:
    def test_upscalers_start_as_nearest_neighbour(self):
        torch.manual_seed(0)
        for icnr in (False, True):
            model = SwapModel("lite-64")
            if icnr:
                assert icnr_(model) == 7  # the encoder's upscale and three per decoder
            z = torch.rand(1, 128, 8, 8)
            with torch.no_grad():
                y = model.decoders["a"].ups[0](z)
            blocks = y.unfold(2, 2, 2).unfold(3, 2, 2).flatten(-2)  # each 2x2 output block
            spread = float((blocks.amax(-1) - blocks.amin(-1)).mean())
            assert (spread < 1e-6) == icnr, spread  # the default init has a checkerboard; ICNR has none

    def test_a_run_with_icnr_records_it_and_a_start_from_a_base_keeps_the_bases_weights(self, sets, tmp_path):
        from safetensors.torch import load_file

        base = tmp_path / "base"
        from swapgraph.training.config import PretrainConfig

        Trainer(PretrainConfig(facesets=[sets["a"], sets["b"]], out=base, steps=2, device="cpu", icnr=True,
                               batch_schedule=[(0, 2)], val_every=1, preview_every=1000, quiet=True)).run()
        assert json.loads((base / "model.json").read_text())["recipe"]["icnr"] is True
        pair = tmp_path / "pair"
        trainer = Trainer(_config(sets, pair, steps=1, init=base, icnr=True))
        weights = load_file(base / "model.safetensors")
        start = trainer.model.state_dict()
        for key, value in weights.items():  # both decoders start as the base's, ICNR or not
            if key.startswith("decoders.base."):
                for name in ("a", "b"):
                    assert torch.equal(start[key.replace(".base.", f".{name}.")], value), key
        trainer.run()
        assert json.loads((pair / "model.json").read_text())["recipe"]["icnr"] is False


class TestStudyPresets:
    def test_residual_decoder_has_its_blocks_and_round_trips(self, tmp_path):
        model = SwapModel("lite-64r").eval()
        plain = SwapModel("lite-64")
        n = sum(isinstance(m, torch.nn.Conv2d) for m in model.decoders["a"].modules())
        assert n == sum(isinstance(m, torch.nn.Conv2d) for m in plain.decoders["a"].modules()) + 2 * 3
        save_model(tmp_path / "m", model, ModelInfo(preset="lite-64r", size=64))
        loaded, _ = load_model(tmp_path / "m")
        x = torch.rand(2, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(model(x, "b"), loaded(x, "b"))

    def test_widths_and_input(self):
        wide = SwapModel("lite-64w")
        assert [l.out_features for l in wide.encoder.dense if isinstance(l, torch.nn.Linear)][0] == 512
        assert PRESETS["lite-128"].size == 128
        with torch.no_grad():
            assert SwapModel("lite-128")(torch.rand(1, 3, 128, 128), "a").shape == (1, 3, 128, 128)

    def test_cli_trains_a_study_preset_with_the_new_flags(self, sets, tmp_path, cli):
        out = tmp_path / "m"
        r = cli("train", "--a", sets["a"], "--b", sets["b"], "--out", out, "--preset", "lite-64r", "--steps", "3",
                "--batch-size", "2", "--lr-warmup", "2", "--lr-decay", "cosine", "--beta1", "0.9", "--icnr",
                "--device", "cpu", "--quiet")
        assert r.code == 0, r.err
        info = json.loads((out / "model.json").read_text())
        assert info["preset"] == "lite-64r"
        assert {k: info["recipe"][k] for k in ("lr_warmup", "lr_decay", "beta1", "icnr")} == {
            "lr_warmup": 2, "lr_decay": "cosine", "beta1": 0.9, "icnr": True}
