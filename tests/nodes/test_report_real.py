"""Real tier: QC's identity and edges on the shared footage (d18 and d19, two different men)."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from swapgraph.nodes.align import crop_from_frame_matrices
from swapgraph.nodes.face.detector import FaceAnalyzer
from swapgraph.nodes.identity import FaceDescriber, load_references
from swapgraph.nodes.report import edges_measure

from helpers import GRAPHS, REPO, SHARED_CLIPS


def _from_test_module(name: str, attr: str):
    # the faults are the default tier's; tests/nodes is no package (``nodes`` is swapgraph's)
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_real_qc_{name}", REPO / "tests" / "nodes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attr)


crude_paste = _from_test_module("test_identity", "crude_paste")
pasted_faults = _from_test_module("test_report", "pasted_faults")

pytestmark = pytest.mark.real
FRAMES = list(range(0, 120, 20))


def frames_of(name: str) -> list[np.ndarray]:
    with av.open(str(SHARED_CLIPS / f"{name}.mp4")) as c:
        return [f.to_ndarray(format="rgb24") for i, f in zip(range(FRAMES[-1] + 1), c.decode(c.streams.video[0]))
                if i in FRAMES]


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """References from facesets extracted here (frames 0-59 of each clip), and some frames of each
    clip with their faces."""
    from swapgraph.cli.main import main

    root = tmp_path_factory.mktemp("real_qc")
    for name in ("d18", "d19"):
        assert main(["run", str(GRAPHS / "extract.json"), "--set", f"plate.path={SHARED_CLIPS / f'{name}.mp4'}",
                     "--set", f"faceset.path={root / name}", "--frames", "0-59", "--quiet"]) == 0
    analyzer = FaceAnalyzer(1, "auto", 0.5, 480)
    try:
        clips = {name: [(x, analyzer.analyze(x[None], 1, 24)[0][0]) for x in frames_of(name)] for name in ("d18", "d19")}
        pastes = []
        for (plate, face), (other, other_face) in zip(clips["d18"], clips["d19"]):
            pasted = crude_paste(plate, face, other, other_face)
            pastes.append((pasted, analyzer.analyze(pasted[None], 1, 24)[0][0]))
    finally:
        analyzer.close()
    return load_references(root / "d18", root / "d19", limit=16), clips, pastes


def test_identity_reads_the_plate_as_a_the_other_clip_as_b_and_a_paste_as_b(shots):
    refs, clips, pastes = shots
    describe = FaceDescriber.shared().describe

    def measured(faces):
        return [refs.measure(describe(image, face.landmarks)) for image, face in faces]

    for faces, target in ((clips["d18"], 0.0), (clips["d19"], 1.0), (pastes, 1.0)):
        got = measured(faces)
        near = "identity_dist_b" if target else "identity_dist_a"
        far = "identity_dist_a" if target else "identity_dist_b"
        assert all(g[near] < 0.45 < 0.6 < g[far] for g in got)  # dlib: one person within 0.6
        assert abs(np.mean([g["identity"] for g in got]) - target) < 0.15


def test_edges_rank_pasted_faults_on_a_real_face(shots):
    _, clips, _ = shots
    image, face = clips["d18"][0]
    m = crop_from_frame_matrices(torch.from_numpy(face.landmarks[None]), 256, 160)[0].numpy()
    edges = {name: edges_measure(out, image, face.box) for name, out in pasted_faults(image, face, m).items()}
    assert edges["plate"] == 0
    assert edges["sharp box"] > 1.5 * edges["hard-top square"]
    assert edges["hard-top square"] > 1.5 * max(edges["feathered box"], edges["feathered oval"])
    assert max(edges["feathered box"], edges["feathered oval"]) < 1.0
