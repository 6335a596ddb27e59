"""QC metrics on frames the tests alter in known ways."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from swapgraph.nodes.face.detector import FaceAnalyzer
from swapgraph.nodes.report import SUMMARY_KEYS, edges_measure, frame_metrics, summarise

from helpers import animate_photo, find_face, packaged_photo, write_clip


@pytest.fixture(scope="module")
def plate():
    image = cv2.resize(packaged_photo("astronaut"), (384, 384))
    analyzer = FaceAnalyzer(1, "auto", 0.5, 480)
    try:
        face = analyzer.analyze(image[None], 1, 24)[0][0]
    finally:
        analyzer.close()
    return image, face


def box(face, pad=0):
    x0, y0, x1, y1 = (int(v) for v in face.box)
    return slice(y0 + pad, y1 - pad), slice(x0 + pad, x1 - pad)


def test_an_unchanged_frame(plate):
    image, face = plate
    m = frame_metrics(image, image, face, face, (image, image))
    assert m["swapped"] == 0 and m["color_delta_e"] == 0 and m["expression_nme"] == 0
    assert m["sharpness_ratio"] > 0 and "seam_energy" not in m  # nothing changed, so no seam


def test_a_blurred_face_is_less_sharp_than_its_plate(plate):
    image, face = plate
    blurred = image.copy()
    ys, xs = box(face)
    blurred[ys, xs] = cv2.GaussianBlur(image, (0, 0), 3)[ys, xs]
    sharp = frame_metrics(image, image, face, None, None)["sharpness_ratio"]
    soft = frame_metrics(blurred, image, face, None, None)
    assert soft["swapped"] == 1 and soft["sharpness_ratio"] < 0.5 * sharp


def test_a_tint_raises_delta_e(plate):
    image, face = plate
    tinted = image.copy()
    ys, xs = box(face)
    tinted[ys, xs] = np.clip(image[ys, xs].astype(int) + [25, 0, -15], 0, 255).astype(np.uint8)
    assert frame_metrics(tinted, image, face, None, None)["color_delta_e"] > 8


def test_a_hard_edge_has_more_seam_energy_than_a_feathered_one(plate):
    image, face = plate
    ys, xs = box(face, 10)
    change = np.zeros(image.shape[:2], np.float32)
    change[ys, xs] = 1.0
    soft = cv2.GaussianBlur(change, (0, 0), 6)
    shift = np.array([30, 10, -20], np.float32)
    hard_out = np.clip(image + change[..., None] * shift, 0, 255).astype(np.uint8)
    soft_out = np.clip(image + soft[..., None] * shift, 0, 255).astype(np.uint8)
    hard = frame_metrics(hard_out, image, face, None, None)["seam_energy"]
    feathered = frame_metrics(soft_out, image, face, None, None)["seam_energy"]
    assert hard > 2 * feathered


def test_expression_error_and_flicker(plate):
    image, face = plate
    moved = face.scaled(1.0, 1.0)
    moved.landmarks[:, 0] += 3.0
    m = frame_metrics(image, image, face, moved, None)
    eyes = np.linalg.norm(face.landmarks[468, :2] - face.landmarks[473, :2])
    assert m["expression_nme"] == pytest.approx(3.0 / eyes, rel=1e-4)
    noisy = np.clip(image.astype(int) + np.random.default_rng(0).integers(-12, 13, image.shape), 0, 255).astype(np.uint8)
    frames = [{"frame": 0, "face": True, **frame_metrics(image, image, face, None, None)},
              {"frame": 1, "face": True, **frame_metrics(noisy, image, face, None, (image, image))}]
    frames[1]["flicker_src"] = 1.0  # the plate moved by one grey level on average
    summary = summarise(frames)
    assert set(summary) == set(SUMMARY_KEYS) and summary["flicker"] > 3


def test_qc_command_writes_the_report(cli, tmp_path):
    frames = animate_photo(packaged_photo("astronaut"), 12, size=(320, 320))
    plate = write_clip(tmp_path / "plate.mp4", frames, audio=False)
    tinted = frames.copy()
    tinted[:, 60:200, 100:220] = np.clip(tinted[:, 60:200, 100:220].astype(int) + [30, 0, -20], 0, 255)
    shot = write_clip(tmp_path / "shot.mp4", tinted.astype(np.uint8), audio=False)
    r = cli("qc", shot, "--source", plate, "--out", tmp_path / "qc", "--workers", "1")
    assert r.code == 0, r.err
    report = json.loads((tmp_path / "qc" / "shot.mp4.qc.json").read_text())
    assert set(report["summary"]) == set(SUMMARY_KEYS) and len(report["frames"]) == 12
    assert report["summary"]["coverage"] == 1.0 and report["summary"]["color_delta_e"] > 5
    assert (tmp_path / "qc" / "shot.mp4.qc.png").exists()
    r = cli("qc", shot, "--source", plate, "--frames", "0-5")
    assert r.code == 2 and "must have the same frames" in r.err


@pytest.fixture(scope="module")
def grace():
    """grace_hopper.jpg, its face, and its 256 px crop's crop_from_frame (coverage 160)."""
    import torch

    from swapgraph.nodes.align import crop_from_frame_matrices

    image = packaged_photo("grace_hopper")
    face = find_face(image)
    return image, face, crop_from_frame_matrices(torch.from_numpy(face.landmarks[None]), 256, 160)[0].numpy()


def pasted_faults(image, face, crop_from_frame, tint=(18, 4, -14), blur=1.5, feather=14.0):
    """A tinted, blurred copy of the face pasted through masks drawn in the 256 px crop
    (coverage 160, so the model's square is rotated and scaled in the frame), as a swap
    pastes: {name: RGB uint8 frame}."""
    from swapgraph.nodes.mask import polygon_masks, regions

    pad, cov = 48, 160
    yy, xx = np.mgrid[:256, :256]
    inside_x = (xx >= pad) & (xx < pad + cov)
    square = (inside_x & (yy >= pad) & (yy < pad + cov)).astype(np.float32)
    open_top = (inside_x & (yy < pad + cov)).astype(np.float32)  # the square, running off the crop's top
    pts = face.landmarks[:, :2] @ crop_from_frame[:, :2].T + crop_from_frame[:, 2]
    oval = polygon_masks(pts[None], [regions()["face_oval"]], 256)[0].astype(np.float32)
    oval = cv2.erode(oval, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (21, 21)))

    def soft(mask):
        return cv2.GaussianBlur(mask, (0, 0), feather)

    masks = {"sharp box": square, "feathered box": soft(cv2.erode(square, np.ones((17, 17)))),
             "hard-top square": soft(open_top) * (yy >= pad), "feathered oval": soft(oval)}
    fake = np.clip(cv2.GaussianBlur(image.astype(np.float32), (0, 0), blur) + np.float32(tint), 0, 255)
    h, w = image.shape[:2]
    out = {"plate": image}
    for name, mask in masks.items():
        weight = cv2.warpAffine(mask, crop_from_frame, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)[..., None]
        out[name] = np.clip(np.round(image * (1 - weight) + fake * weight), 0, 255).astype(np.uint8)
    return out


class TestEdges:
    @pytest.mark.parametrize("blur", [1.5, 4.0])
    def test_ranks_pasted_faults_as_a_viewer_sees_them(self, grace, blur):
        image, face, m = grace
        edges = {name: edges_measure(out, image, face.box) for name, out in pasted_faults(image, face, m, blur=blur).items()}
        assert edges["plate"] == 0
        assert edges["sharp box"] > 1.5 * edges["hard-top square"]  # four hard sides, not one
        assert edges["hard-top square"] > 3 * edges["feathered box"]
        assert edges["feathered oval"] < edges["feathered box"] < 0.3
        # the old measure misses the one hard side: it ranks that square with the feathered box
        seam = {name: frame_metrics(out, image, face, None, None)["seam_energy"]
                for name, out in pasted_faults(image, face, m, blur=blur).items() if name != "plate"}
        assert seam["hard-top square"] < 1.5 * seam["feathered box"]

    def test_a_blurred_face_alone_has_no_edges(self, grace):
        image, face, m = grace
        soft = pasted_faults(image, face, m, tint=(0, 0, 0), blur=4.0)["feathered oval"]
        assert frame_metrics(soft, image, face, None, None)["sharpness_ratio"] < 0.5  # visibly blurred...
        assert edges_measure(soft, image, face.box) < 0.2  # ...but no edge a viewer would see

    def test_reads_a_hard_step_on_flat_skin_as_documented(self):
        flat = np.clip(np.random.default_rng(0).normal((170, 130, 110), 2, (400, 400, 3)), 0, 255).astype(np.uint8)
        step = np.zeros((400, 400), np.float32)
        step[120:280, 120:280] = 1
        lab = cv2.cvtColor(np.float32([[[170, 130, 110], [190, 150, 130]]]) / 255, cv2.COLOR_RGB2LAB)[0]
        delta_e = float(np.linalg.norm(lab[1] - lab[0]))
        readings = []
        for weight in (step, cv2.GaussianBlur(step, (0, 0), 6), cv2.GaussianBlur(step, (0, 0), 12)):
            out = np.clip(flat + weight[..., None] * 20, 0, 255).astype(np.uint8)
            readings.append(edges_measure(out, flat, (100, 100, 300, 300)))
        hard, feather3, feather6 = readings  # feathers of 3 % and 6 % of the 200 px face
        assert delta_e / hard == pytest.approx(4.4, rel=0.15)
        assert delta_e / feather3 == pytest.approx(9, rel=0.15) and delta_e / feather6 == pytest.approx(17, rel=0.15)

    def test_scale_free(self, grace):
        image, face, m = grace
        out = pasted_faults(image, face, m)["hard-top square"]
        full = edges_measure(out, image, face.box)
        half = edges_measure(cv2.resize(out, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
                             cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
                             tuple(v / 2 for v in face.box))
        assert half == pytest.approx(full, rel=0.15)
