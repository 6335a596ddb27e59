"""QC metrics on frames the tests alter in known ways."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from swapgraph.nodes.face import FaceAnalyzer
from swapgraph.nodes.report import SUMMARY_KEYS, frame_metrics, summarise

from helpers import animate_photo, packaged_photo, write_clip


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
