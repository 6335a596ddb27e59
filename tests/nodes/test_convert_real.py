"""Real tier, conversion: graphs/swap.json against graphs/classic.json on a shared pair."""

from __future__ import annotations

import pytest

from swapgraph.qc.runner import run_qc
from swapgraph.training.config import TrainConfig
from swapgraph.training.trainer import Trainer

from helpers import GRAPHS, SHARED_CLIPS

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def d18_to_d19(tmp_path_factory):
    """A model trained briefly with the default recipe on d18 (A) and d19 (B) facesets."""
    from swapgraph.cli.main import main

    root = tmp_path_factory.mktemp("d18_d19")
    sets = {}
    for name in ("d18", "d19"):
        sets[name] = root / name
        assert main(["run", str(GRAPHS / "extract.json"), "--set", f"plate.path={SHARED_CLIPS / f'{name}.mp4'}",
                     "--set", f"faceset.path={sets[name]}", "--frames", "0-149", "--quiet"]) == 0
    model = root / "model"
    # swapgraph train's defaults (TrainConfig's), briefly
    Trainer(TrainConfig(a=sets["d18"], b=sets["d19"], out=model, device="cpu", steps=150, val_every=50,
                        preview_every=1000, checkpoint_every=1000, quiet=True)).run()
    return model


def test_swap_graph_beats_the_classic_recipe(cli, d18_to_d19, tmp_path):
    plate = SHARED_CLIPS / "d18.mp4"
    summaries = {}
    for graph in ("swap", "classic"):
        out = tmp_path / f"{graph}.mp4"
        r = cli("run", GRAPHS / f"{graph}.json", "--set", f"plate.path={plate}", "--set", f"swap.model={d18_to_d19}",
                "--set", f"out.path={out}", "--set", "out.preset=veryfast", "--frames", "0-59", "--quiet")
        assert r.code == 0, r.err
        # the frame range and the A and B facesets (for identity) come from the output's sidecar
        summaries[graph] = run_qc(out, plate)["summary"]
    ours, classic = summaries["swap"], summaries["classic"]
    print(summaries)
    assert ours["coverage"] == classic["coverage"] == 1.0
    assert ours["color_delta_e"] < classic["color_delta_e"]
    assert ours["edges"] < classic["edges"]
    # the face moved from A (the plate reads 0.01) towards B (B's own clip reads 0.98); a model
    # this young does not beat the classic box on identity yet: the box shows more of what
    # the model rendered around the face (at 150 steps 0.41 against 0.45; see the README)
    assert ours["identity"] > 0.2
    # no worse on expression and flicker (within 5%: both graphs share the model and the landmarks)
    assert ours["expression_nme"] <= 1.05 * classic["expression_nme"]
    assert ours["flicker"] <= 1.05 * classic["flicker"]
