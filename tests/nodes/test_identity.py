"""Identity: dlib's face descriptor against reference facesets, on the packaged photos as two people."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from swapgraph.nodes.face.detector import FaceAnalyzer
from swapgraph.nodes.identity import FaceDescriber, faceset_descriptors, load_references, references_from_sidecar
from swapgraph.nodes.mask import polygon_masks, regions
from swapgraph.runtime.errors import UsageError

from helpers import GRAPHS, animate_photo, packaged_facesets, packaged_photo, write_clip


@pytest.fixture(scope="module")
def facesets(tmp_path_factory):
    """Facesets of 16 frames each from animated packaged photos: grace_hopper (A), astronaut (B)."""
    return packaged_facesets(tmp_path_factory.mktemp("identity"), 16)


@pytest.fixture(scope="module")
def photos():
    """(image, face) of both photos, at sizes other than the facesets' frames."""
    analyzer = FaceAnalyzer(1, "auto", 0.5, 480)
    try:
        found = {}
        for name, photo, size in (("grace", "grace_hopper", (384, 450)), ("astro", "astronaut", (400, 400))):
            image = cv2.resize(packaged_photo(photo), size)
            found[name] = image, analyzer.analyze(image[None], 1, 24)[0][0]
        return found
    finally:
        analyzer.close()


def crude_paste(dst, dst_face, src, src_face, feather=6.0):
    """``src``'s face warped onto ``dst_face`` by a similarity on all landmarks, pasted through
    ``dst``'s face oval (eroded, feathered): RGB uint8 like ``dst``."""
    m, _ = cv2.estimateAffinePartial2D(src_face.landmarks[:, :2].astype(np.float32),
                                       dst_face.landmarks[:, :2].astype(np.float32))
    h, w = dst.shape[:2]
    warped = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR)
    oval = polygon_masks(dst_face.landmarks[None, :, :2].astype(np.float64), [regions()["face_oval"]], max(h, w))[0]
    mask = cv2.GaussianBlur(cv2.erode(oval[:h, :w].astype(np.float32), np.ones((9, 9))), (0, 0), feather)[..., None]
    return np.clip(dst * (1 - mask) + warped * mask, 0, 255).astype(np.uint8)


def test_a_plate_reads_a_another_face_b_and_a_paste_mostly_b(facesets, photos):
    refs = load_references(facesets["grace"], facesets["astro"], limit=12)
    assert refs.a.shape == (12, 128) and refs.b.shape == (12, 128)
    describe = FaceDescriber.shared().describe
    (grace, grace_face), (astro, astro_face) = photos["grace"], photos["astro"]
    plate = refs.measure(describe(grace, grace_face.landmarks))
    other = refs.measure(describe(astro, astro_face.landmarks))
    pasted = crude_paste(grace, grace_face, astro, astro_face)
    analyzer = FaceAnalyzer(1, "auto", 0.5, 480)
    try:
        again = analyzer.analyze(pasted[None], 1, 24)[0][0]
    finally:
        analyzer.close()
    paste = refs.measure(describe(pasted, again.landmarks))
    # dlib's rule: one person within 0.6, two people beyond
    assert plate["identity_dist_a"] < 0.3 < 0.6 < plate["identity_dist_b"] and abs(plate["identity"]) < 0.15
    assert other["identity_dist_b"] < 0.3 < 0.6 < other["identity_dist_a"] and abs(other["identity"] - 1) < 0.15
    assert paste["identity_dist_b"] < 0.45 < 0.6 < paste["identity_dist_a"] and paste["identity"] > 0.75


def test_not_a_faceset_is_one_line_naming_the_folder(tmp_path):
    with pytest.raises(UsageError, match=f"{tmp_path}: not a faceset .*WriteFaceset") as err:
        faceset_descriptors(tmp_path)
    assert "\n" not in str(err.value)


def test_references_come_from_the_swap_models_training_facesets(facesets, tmp_path):
    from swapgraph.nodes.swap_model import ModelInfo, SwapModel, save_model

    model = tmp_path / "bank" / "frontal"
    names = {"a": str(facesets["grace"]), "b": str(facesets["astro"])}
    save_model(model, SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64, names=names, bucket="frontal"))

    def sidecar(direction, path=model.parent):
        return {"params": {"plate": {"path": "plate.mp4", "frames": None},
                           "swap": {"model": str(path), "direction": direction, "hold": 5}}}

    assert references_from_sidecar(sidecar("a_to_b")) == (facesets["grace"], facesets["astro"])
    assert references_from_sidecar(sidecar("b_to_a")) == (facesets["astro"], facesets["grace"])  # the plate shows B
    assert references_from_sidecar(sidecar("a_to_b", tmp_path / "gone")) is None
    assert references_from_sidecar({}) is None


def test_qc_command_measures_identity_and_reads_the_range_from_the_sidecar(cli, facesets, tmp_path):
    plate = write_clip(tmp_path / "plate.mp4", animate_photo(packaged_photo("grace_hopper"), 12, size=(320, 320)),
                       audio=False)
    shot = tmp_path / "shot.mp4"
    r = cli("run", GRAPHS / "transcode.json", "--set", f"plate.path={plate}", "--set", f"out.path={shot}",
            "--frames", "4-9", "--quiet")
    assert r.code == 0, r.err
    r = cli("qc", shot, "--source", plate, "--a", facesets["grace"], "--b", facesets["astro"], "--workers", "1")
    assert r.code == 0, r.err  # no --frames: 4-9 comes from the sidecar
    report = json.loads((tmp_path / "shot.mp4.qc.json").read_text())
    summary = report["summary"]
    assert len(report["frames"]) == 6 and summary["color_delta_e"] < 1  # frame for frame the plate's 4-9
    assert summary["identity_b_share"] == 0 and abs(summary["identity"]) < 0.15  # the plate is A throughout
    assert summary["identity_dist_a"] < 0.3 < 0.6 < summary["identity_dist_b"]
    r = cli("qc", shot, "--source", plate, "--workers", "1")
    assert r.code == 0 and "identity not measured" in r.err
    assert "identity" not in json.loads((tmp_path / "shot.mp4.qc.json").read_text())["summary"]
    r = cli("qc", shot, "--source", plate, "--a", tmp_path, "--b", facesets["astro"])
    assert r.code == 2 and r.error_lines == [f"error: qc --a: {tmp_path} is not a faceset (no faces.jsonl); give a "
                                             "folder written by `swapgraph extract`"]
    r = cli("qc", shot, "--source", plate, "--a", facesets["grace"])
    assert r.code == 2 and "--a and --b go together" in r.err


def test_quality_report_takes_both_references_or_neither(facesets, tmp_path):
    from pydantic import ValidationError

    from swapgraph.nodes.report import QualityReportParams

    both = QualityReportParams(path=tmp_path / "qc.json", faceset_a=facesets["grace"], faceset_b=facesets["astro"])
    assert both.path_fields() == {"path": "output", "faceset_a": "input", "faceset_b": "input"}
    with pytest.raises(ValidationError, match="give both faceset_a and faceset_b"):
        QualityReportParams(path=tmp_path / "qc.json", faceset_a=facesets["grace"])
