"""The swap model: presets, model folders (never a pickle), banks of models per orientation."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from swapgraph.nodes.swap_model import PRESETS, ModelError, ModelInfo, SwapModel, bank_models, load_model, save_model


class TestModel:
    @pytest.mark.parametrize("preset", sorted(PRESETS))
    def test_shapes(self, preset):
        model = SwapModel(preset, mask=True)
        s = PRESETS[preset].size
        with torch.no_grad():
            y = model(torch.rand(2, 3, s, s), "b")
        assert y.shape == (2, 4, s, s) and 0 <= y.min() and y.max() <= 1

    def test_classic_layout(self):
        m = SwapModel("classic-64")
        convs = [c.out_channels for c in m.encoder.convs.modules() if isinstance(c, torch.nn.Conv2d)]
        dense = [l.out_features for l in m.encoder.dense.modules() if isinstance(l, torch.nn.Linear)]
        assert convs == [128, 256, 512, 1024] and dense == [1024, 4 * 4 * 1024]

    def test_save_and_load_round_trip(self, tmp_path):
        model = SwapModel("lite-64").eval()
        save_model(tmp_path / "m", model, ModelInfo(preset="lite-64", size=64, bucket="frontal"))
        loaded, info = load_model(tmp_path / "m")
        x = torch.rand(3, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(model(x, "a"), loaded(x, "a"))
        assert info.bucket == "frontal" and sorted(p.name for p in (tmp_path / "m").iterdir()) == [
            "model.json", "model.safetensors"]

    @pytest.mark.parametrize("how", ["suffix", "torch_save", "raw_pickle"])
    def test_a_folder_with_a_pickle_is_refused(self, tmp_path, how):
        folder = tmp_path / "m"
        save_model(folder, SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64))
        if how == "suffix":
            (folder / "extra.pkl").write_bytes(b"x")
        elif how == "torch_save":
            torch.save({"w": torch.zeros(1)}, folder / "weights.data")
        else:
            (folder / "notes").write_bytes(pickle.dumps({"a": 1}))
        with pytest.raises(ModelError, match="pickle"):
            load_model(folder)

    def test_unknown_preset_is_refused(self, tmp_path):
        folder = tmp_path / "m"
        save_model(folder, SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64))
        info = json.loads((folder / "model.json").read_text())
        info["preset"] = "giant-512"
        (folder / "model.json").write_text(json.dumps(info))
        with pytest.raises(ModelError, match="unknown preset 'giant-512'") as e:
            load_model(folder)
        assert "\n" not in str(e.value)  # one line for the CLI

    def test_bank(self, tmp_path):
        for bucket in ("frontal", "three_quarter"):
            save_model(tmp_path / "bank" / bucket, SwapModel("lite-64"),
                       ModelInfo(preset="lite-64", size=64, bucket=bucket))
        assert set(bank_models(tmp_path / "bank")) == {"frontal", "three_quarter"}
        assert bank_models(tmp_path / "bank" / "frontal") == {"frontal": tmp_path / "bank" / "frontal"}
        with pytest.raises(ModelError):
            bank_models(tmp_path)
