"""Faces: detection on real photos, landmarks, tracking, pose, buckets, smoothing, alignment."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch

from swapgraph.nodes.align import (crop_from_frame_matrices, cut_crops, invert_affine, model_input, paste_crops,
                                   template_points)
from swapgraph.nodes.face.detector import FaceAnalyzer, landmark_box
from swapgraph.nodes.face.nodes import DetectFaces, DetectFacesParams, SmoothLandmarks, SmoothLandmarksParams
from swapgraph.nodes.face.pose import BucketRule, BucketTracker, head_pose
from swapgraph.nodes.face.smoothing import OneEuroFilter, face_scale, one_euro_window
from swapgraph.nodes.face.template import POINTS, STABLE, template, template_array
from swapgraph.nodes.face.tracking import FaceTracker, parse_keep, select_faces
from swapgraph.nodes.geometry import fit_similarity
from swapgraph.nodes.ports import Face, Faces
from swapgraph.runtime.images import rgb_to_tensor
from swapgraph.runtime.node import RunContext
from swapgraph.runtime.ports import Frames, VideoInfo

from helpers import GRAPHS, animate_photo, packaged_photo, write_clip, write_graph

# iris centres checked by hand on 4x enlargements of the photos (image left eye, image right eye)
EYES = {"grace_hopper": [(223, 191), (306, 188)], "astronaut": [(203, 101), (247, 104)]}


@pytest.fixture(scope="module")
def analyzer():
    a = FaceAnalyzer(workers=1, detector="full", min_confidence=0.5, detect_size=480)
    yield a
    a.close()


def detect(analyzer, image: np.ndarray, max_faces: int = 4) -> list[Face]:
    return analyzer.analyze(image[None], max_faces=max_faces, min_face_size=24)[0]


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """head_pose's convention: R = Rz(roll) @ Ry(-yaw) @ Rx(pitch), angles in degrees."""
    y, p, r = math.radians(-yaw), math.radians(pitch), math.radians(roll)
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def synthetic_mesh(seed: int = 0) -> np.ndarray:
    """478 points of a frontal face in template units, centred: the template's points where
    it has them, the rest scattered over the face."""
    rng = np.random.default_rng(seed)
    mesh = np.column_stack([rng.uniform(0.05, 0.95, 478), rng.uniform(-0.05, 1.1, 478), rng.uniform(-0.1, 0.1, 478)])
    for i, xyz in template().items():
        mesh[i] = xyz
    return mesh - 0.5


def face_at(yaw: float, pitch: float = 0.0, roll: float = 0.0, centre=(320.0, 240.0), size: float = 160.0,
            track: int = 0) -> Face:
    lm = (size * synthetic_mesh() @ rotation(yaw, pitch, roll).T + [*centre, 0]).astype(np.float32)
    return Face(track, landmark_box(lm), 0.9, lm)


def turning_face(frames: int = 120, seed: int = 1, x0: float = 120.0, y0: float = 240.0, speed: float = 3.0,
                 jitter: float = 0.7, yaw_noise: float = 2.0) -> list[np.ndarray]:
    """Landmarks (478, 3) float32 per frame of one face that moves across the frame with
    detector jitter and turns its head: it dwells near the 20 degree frontal limit, turns
    clearly to side (60 degrees), comes back to 8, then dwells near 20 again."""
    rng = np.random.default_rng(seed)
    mesh = synthetic_mesh()
    keys = ([0, 35, 55, 70, 90, 100, 1000], [18, 19, 62, 62, 8, 21, 21])
    out = []
    for n in range(frames):
        yaw = float(np.interp(n, *keys)) + rng.normal(0, yaw_noise)
        r = rotation(yaw, 6 * math.sin(n / 13), 4 * math.sin(n / 17))
        centre = (x0 + speed * n + 25 * math.sin(n / 7), y0 + 30 * math.sin(n / 11), 0)
        lm = 160 * mesh @ r.T + centre + rng.normal(0, jitter, (478, 3))
        out.append(lm.astype(np.float32))
    return out


def two_face_shot(frames: int = 120) -> list[list[Face]]:
    """Untracked faces per frame: A turns and moves through the whole shot; B, far below it,
    appears at frame 10, misses frames 50-55 (a short miss) and 80-99 (a track's end)."""
    a = turning_face(frames, seed=1)
    b = turning_face(frames, seed=2, x0=500, y0=700, speed=-1.0)
    shot = []
    for n in range(frames):
        row = [Face(-1, landmark_box(a[n]), 0.9, a[n])]
        if n >= 10 and not 50 <= n <= 55 and not 80 <= n <= 99:
            row.append(Face(-1, landmark_box(b[n]), 0.8, b[n]))
        shot.append(row)
    return shot


def batches_of(frames: int, start: int, sizes: tuple[int, ...]) -> list[range]:
    """Consecutive frame ranges from ``start`` to ``frames``, their sizes cycling through ``sizes``."""
    out, n, i = [], start, 0
    while n < frames:
        out.append(range(n, min(frames, n + sizes[i % len(sizes)])))
        n, i = out[-1].stop, i + 1
    return out


def frames_of(numbers: range) -> Frames:
    """A batch of tiny 25 fps frames whose pixels hold their frame number (for fake analyzers)."""
    pixels = torch.tensor(list(numbers), dtype=torch.uint8)[:, None, None, None].expand(-1, 3, 4, 4).contiguous()
    info = VideoInfo(640, 480, Fraction(25), Fraction(1, 25))
    return Frames(pixels, list(numbers), list(numbers), [1] * len(numbers), info)


def assert_same_from(whole: dict[int, list[Face]], part: dict[int, list[Face]], first: int) -> None:
    """Frames ``first`` on are identical in both runs, up to the numbering of tracks: the
    partition of faces into tracks is the same, and everything else bit for bit."""
    ids: dict[int, int] = {}
    assert first in part and max(part) == max(whole)
    for n in range(first, max(whole) + 1):
        assert len(part[n]) == len(whole[n]), n
        for p, w in zip(part[n], whole[n]):
            assert ids.setdefault(p.track, w.track) == w.track, (n, p.track, w.track)
            assert np.array_equal(p.landmarks, w.landmarks), n
            assert (p.box, p.pose, p.bucket) == (w.box, w.pose, w.bucket), n
    assert len(set(ids.values())) == len(ids)


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]])


class TestDetection:
    @pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
    def test_one_face_with_eyes_where_checked_by_hand(self, analyzer, name):
        image = packaged_photo(name)
        faces = detect(analyzer, image)
        assert len(faces) == 1
        face = faces[0]
        assert face.landmarks.shape == (478, 3) and face.landmarks.dtype == np.float32
        for index, (x, y) in zip((468, 473), EYES[name]):
            assert math.dist(face.landmarks[index, :2], (x, y)) < 4
        x0, y0, x1, y1 = face.box
        assert x0 < EYES[name][0][0] < EYES[name][1][0] < x1 and y0 < EYES[name][0][1] < y1
        assert face.score > 0.7

    def test_no_face_in_a_blank_or_noise_image(self, analyzer):
        assert detect(analyzer, np.full((240, 320, 3), 128, np.uint8)) == []
        noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
        assert detect(analyzer, noise) == []

    def test_two_faces_and_max_faces(self, analyzer):
        a = cv2.resize(packaged_photo("grace_hopper"), (400, 468))
        b = cv2.resize(packaged_photo("astronaut"), (468, 468))
        pair = np.hstack([a, b])
        faces = detect(analyzer, pair)
        assert len(faces) == 2
        assert len(detect(analyzer, pair, max_faces=1)) == 1

    def test_pool_gives_the_same_faces_in_order(self, analyzer, grace_frames):
        frames = grace_frames[:6]
        pool = FaceAnalyzer(workers=2, detector="full", min_confidence=0.5, detect_size=480)
        try:
            pooled = pool.analyze(frames, 4, 24)
        finally:
            pool.close()
        local = analyzer.analyze(frames, 4, 24)
        assert [len(r) for r in pooled] == [len(r) for r in local] == [1] * 6
        for p, q in zip(pooled, local):
            np.testing.assert_allclose(p[0].landmarks, q[0].landmarks, atol=1e-3)


class TestPose:
    @staticmethod
    def rotated_template(yaw: float, pitch: float, roll: float) -> np.ndarray:
        def rx(a):
            return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])

        def ry(a):
            return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])

        def rz(a):
            return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])

        r = rz(math.radians(roll)) @ ry(math.radians(-yaw)) @ rx(math.radians(pitch))
        lm = np.zeros((478, 3), np.float32)
        t = template()
        for i in POINTS:
            lm[i] = 300 * (r @ (t[i] - 0.5)) + [320, 240, 0]
        return lm

    @pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (30, 0, 0), (-60, 10, 0), (15, -20, 25), (0, 0, -40)])
    def test_recovers_known_rotation(self, yaw, pitch, roll):
        got = head_pose(self.rotated_template(yaw, pitch, roll))
        assert got == pytest.approx((yaw, pitch, roll), abs=0.01)

    def test_yaw_sign_follows_the_nose(self):
        lm = self.rotated_template(30, 0, 0)
        nose, mid_eyes = lm[4, 0], (lm[33, 0] + lm[263, 0]) / 2
        assert nose > mid_eyes  # yaw > 0: the nose points towards image right

    def test_photos_are_frontal(self, analyzer):
        for name in ("grace_hopper", "astronaut"):
            yaw, pitch, roll = head_pose(detect(analyzer, packaged_photo(name))[0].landmarks)
            assert abs(yaw) < 15 and abs(roll) < 20

    def test_mirrored_photo_mirrors_yaw_and_roll(self, analyzer):
        image = packaged_photo("astronaut")
        yaw, _, roll = head_pose(detect(analyzer, image)[0].landmarks)
        myaw, _, mroll = head_pose(detect(analyzer, np.ascontiguousarray(image[:, ::-1]))[0].landmarks)
        assert myaw == pytest.approx(-yaw, abs=3) and mroll == pytest.approx(-roll, abs=3)


class TestBuckets:
    def test_thresholds(self):
        rule = BucketRule(20, 55, 5)
        assert [rule.raw(y) for y in (0, -19, 20, 40, -54.9, 55, -80)] == [
            "frontal", "frontal", "three_quarter", "three_quarter", "three_quarter", "side", "side"]

    def test_hysteresis_holds_near_a_threshold(self):
        rule = BucketRule(20, 55, 5)
        noisy = [18, 21, 19, 22, 17, 23, 20.5, 19.5, 24]
        held, b = [], None
        for y in noisy:
            b = rule.classify(y, b)
            held.append(b)
        assert set(held) == {"frontal"}
        assert rule.classify(26, "frontal") == "three_quarter"  # past the margin: it changes
        assert rule.classify(16, "three_quarter") == "three_quarter"
        assert rule.classify(14, "three_quarter") == "frontal"

    def test_windowed_tracker_follows_the_mean_near_a_threshold(self):
        tracker = BucketTracker(BucketRule(20, 55, 5), window=15)
        noisy = [18, 21, 18.5, 22, 17, 23, 18, 21.5, 17.5, 23, 18, 21]
        got = [tracker(face_at(y), n) for n, y in enumerate(noisy)]
        assert [f.pose[0] for f in got] == pytest.approx(noisy, abs=0.01)
        assert {f.bucket for f in got} == {"frontal"}  # 6 of 12 raw yaws are past 20: no flips
        assert tracker(face_at(27), 12).bucket == "three_quarter"  # a clear turn changes it at once
        for n in range(13, 30):
            tracker(face_at(30), n)
        # the turned head moved the mean: now it is three_quarter that holds near the threshold
        assert tracker(face_at(19), 30).bucket == "three_quarter"
        assert tracker(face_at(14), 31).bucket == "frontal"  # past the margin the other way

    def test_windowed_tracker_keeps_tracks_apart_and_forgets_old_frames(self):
        tracker = BucketTracker(BucketRule(20, 55, 5), window=5)
        for n in range(10):
            tracker(face_at(40, track=0), n)
            tracker(face_at(10, track=1), n)
        assert tracker(face_at(19, track=1), 10).bucket == "frontal"
        assert tracker(face_at(19, track=0), 10).bucket == "three_quarter"
        assert tracker(face_at(19, track=2), 30).bucket == "frontal"
        assert set(tracker.recent) == {2}  # tracks unseen for a window are dropped
        # after a gap longer than the window, track 0 starts afresh: its old 40s are gone
        assert tracker(face_at(19, track=0), 30).bucket == "frontal"

    def test_windowed_buckets_are_exact_from_any_start(self):
        lms = turning_face()
        faces = {n: Face(0, landmark_box(lm), 0.9, lm) for n, lm in enumerate(lms) if not 64 <= n <= 66}
        window = 15

        def run(start: int, track: int) -> dict[int, list[Face]]:
            tracker = BucketTracker(BucketRule(20, 55, 5), window)
            return {n: [tracker(replace(faces[n], track=track), n)] if n in faces else []
                    for n in range(start, len(lms))}

        whole = run(0, 0)
        buckets = [row[0].bucket for row in whole.values() if row]
        raw = [BucketRule().raw(row[0].pose[0]) for row in whole.values() if row]
        assert set(buckets) == set(raw) == {"frontal", "three_quarter", "side"}
        flips = sum(a != b for a, b in zip(buckets, buckets[1:]))
        assert flips < sum(a != b for a, b in zip(raw, raw[1:])) / 2  # steadier than the raw yaw
        for start in (1, 20, 47, 55, 90):
            assert_same_from(whole, run(start, 7), start + window - 1)


class TestTracking:
    @staticmethod
    def face(x: float, y: float, size: float = 100) -> Face:
        lm = np.zeros((478, 3), np.float32)
        lm[:, 0] = np.linspace(x, x + size, 478)
        lm[:, 1] = np.linspace(y, y + size, 478)
        return Face(-1, landmark_box(lm), 0.9, lm)

    def test_ids_stable_through_motion_and_short_misses(self):
        tracker = FaceTracker(max_missing=5)
        ids = []
        for t in range(30):
            faces = [] if 10 <= t < 14 else [self.face(100 + 4 * t, 100), self.face(600 - 4 * t, 300)]
            ids.append([f.track for f in tracker.update(faces)])
        assert ids[0] == [0, 1] and ids[29] == [0, 1]
        assert all(i in ([0, 1], []) for i in ids)

    def test_long_miss_starts_a_new_track(self):
        tracker = FaceTracker(max_missing=3)
        tracker.update([self.face(100, 100)])
        for _ in range(5):
            tracker.update([])
        assert tracker.update([self.face(100, 100)])[0].track == 1

    def test_a_far_face_is_a_new_track(self):
        tracker = FaceTracker()
        tracker.update([self.face(100, 100)])
        assert tracker.update([self.face(500, 100)])[0].track == 1

    def test_detect_faces_tracks_and_buckets_are_exact_after_the_preroll(self):
        shot = two_face_shot()

        class Recorded:
            """Stands in for FaceAnalyzer: the faces of the frame whose number the pixels hold."""

            def analyze(self, images, max_faces, min_face_size):
                return [[replace(f) for f in shot[int(im[0, 0, 0])]] for im in images]

            def close(self):
                pass

        params = DetectFacesParams(keep="all", workers=1)
        preroll = DetectFaces.preroll(params)
        assert preroll == 30

        def run(start: int, sizes: tuple[int, ...]) -> dict[int, list[Face]]:
            node = DetectFaces("faces", params, torch.device("cpu"))
            node.open(RunContext(cpus=1))
            node.analyzer.close()
            node.analyzer = Recorded()
            out = {}
            for numbers in batches_of(len(shot), start, sizes):
                out.update(zip(numbers, node.process(frames_of(numbers))["faces"].faces))
            node.finish()
            return out

        whole = run(0, (8,))
        tracks = [[f.track for f in whole[n]] for n in (0, 20, 60, 119)]
        assert tracks == [[0], [0, 1], [0, 1], [0, 2]]  # B kept its track through 6 misses, not through 20
        assert {f.bucket for row in whole.values() for f in row} == {"frontal", "three_quarter", "side"}
        for start, sizes in ((5, (1,)), (30, (7, 3)), (47, (16,)), (60, (5, 32)), (89, (2,))):
            part = run(start, sizes)
            assert_same_from(whole, part, start + preroll)
            if start > 10:
                assert part[start + preroll][0].track == 0  # ids number the run's own tracks

    def test_keep_by_track_id_is_a_range_issue(self):
        cpu = torch.device("cpu")
        issues = DetectFaces("f", DetectFacesParams(keep="0,2"), cpu).range_issues()
        assert len(issues) == 1 and issues[0].where == "param 'keep'"
        assert "first frame a run decodes" in issues[0].problem and "'largest'" in issues[0].fix
        assert DetectFaces("f", DetectFacesParams(keep="largest"), cpu).range_issues() == []
        assert DetectFaces("f", DetectFacesParams(keep="all"), cpu).range_issues() == []
        assert DetectFaces.preroll(DetectFacesParams(max_missing=4, bucket_window=1)) == 5

    def test_keep(self):
        faces = [Face(0, (0, 0, 50, 50), 1, np.zeros((478, 3))), Face(1, (0, 0, 80, 90), 1, np.zeros((478, 3)))]
        assert [f.track for f in select_faces(faces, parse_keep("largest"))] == [1]
        assert [f.track for f in select_faces(faces, parse_keep("0"))] == [0]
        assert len(select_faces(faces, parse_keep("all"))) == 2
        with pytest.raises(ValueError):
            parse_keep("biggest")


class TestOneEuro:
    def test_still_point_jitter_is_removed(self):
        rng = np.random.default_rng(0)
        f = OneEuroFilter(min_cutoff=1.0, beta=2.0)
        raw = np.array([[100.0, 100.0]]) + rng.normal(0, 1.0, (150, 1, 2))
        out = np.array([f(x, t / 30, scale=100) for t, x in enumerate(raw)])
        assert out[30:].std(0).mean() < 0.4 * raw[30:].std(0).mean()

    def test_fast_motion_is_not_lagged(self):
        f = OneEuroFilter(min_cutoff=1.0, beta=2.0)
        still = OneEuroFilter(min_cutoff=1.0, beta=0.0)  # the same filter without speed adaptation
        xs = [np.array([[100.0 + 20 * t, 50.0]]) for t in range(60)]  # 600 px/s, 6 face sizes a second
        lag = [x[0, 0] - f(x, t / 30, 100)[0, 0] for t, x in enumerate(xs)][-1]
        plain = [x[0, 0] - still(x, t / 30, 100)[0, 0] for t, x in enumerate(xs)][-1]
        assert lag < 10 and plain > 50  # under half a frame of motion, against over two and a half


def smooth_run(params: SmoothLandmarksParams, shot: dict[int, list[Face]], start: int,
               sizes: tuple[int, ...]) -> dict[int, list[Face]]:
    """SmoothLandmarks over frames ``start`` on of ``shot`` (25 fps), in batches of ``sizes``."""
    node = SmoothLandmarks("smooth", params, torch.device("cpu"))
    node.open(RunContext())
    out = {}
    for numbers in batches_of(max(shot) + 1, start, sizes):
        faces = Faces([list(shot[n]) for n in numbers], frames_of(numbers))
        out.update(zip(numbers, node.process(faces=faces)["faces"].faces))
    return out


def tracked(landmarks: list[np.ndarray], track: int = 0) -> dict[int, list[Face]]:
    return {n: [Face(track, landmark_box(lm), 0.9, lm)] for n, lm in enumerate(landmarks)}


class TestWindowedSmoothing:
    def test_still_point_jitter_is_removed(self):
        rng = np.random.default_rng(0)
        raw = np.array([[100.0, 100.0]]) + rng.normal(0, 1.0, (150, 1, 2))
        out = np.array([one_euro_window([(u / 30, raw[u], 100) for u in range(max(0, t - 29), t + 1)], 1.0, 2.0, 1.0)
                        for t in range(150)])
        assert out[30:].std(0).mean() < 0.4 * raw[30:].std(0).mean()

    def test_fast_motion_is_not_lagged(self):
        xs = [np.array([[100.0 + 20 * t, 50.0]]) for t in range(60)]  # 600 px/s, 6 face sizes a second
        window = [(t / 30, x, 100) for t, x in enumerate(xs)][-30:]
        lag = xs[-1][0, 0] - one_euro_window(window, 1.0, 2.0, 1.0)[0, 0]
        plain = xs[-1][0, 0] - one_euro_window(window, 1.0, 0.0, 1.0)[0, 0]
        assert lag < 10 and plain > 50

    def test_node_smooths_a_jittery_face(self):
        still = [face_at(5).landmarks + np.random.default_rng(n).normal(0, 1.0, (478, 3)).astype(np.float32)
                 for n in range(100)]
        out = smooth_run(SmoothLandmarksParams(), tracked(still), 0, (8,))
        raw = np.stack(still)[40:, :, :2]
        smoothed = np.stack([out[n][0].landmarks for n in range(40, 100)])[:, :, :2]
        assert smoothed.std(0).mean() < 0.4 * raw.std(0).mean()
        assert {out[n][0].bucket for n in out} == {"frontal"}

    def test_close_to_the_running_filter_once_the_window_fills(self):
        lms = turning_face()
        out = smooth_run(SmoothLandmarksParams(), tracked(lms), 0, (8,))
        running = OneEuroFilter(1.0, 2.0, 1.0)
        worst = 0.0
        for n, lm in enumerate(lms):
            want = running(lm, n / 25, face_scale(lm))
            if n >= 29:
                worst = max(worst, float(np.abs(out[n][0].landmarks - want)[:, :2].max()))
        assert 0 < worst < 0.05  # px: windowed, so not identical, but within a tiny weight

    def test_exact_after_the_preroll_from_any_start(self):
        a, b = turning_face(seed=1), turning_face(seed=3, x0=500, y0=700, speed=-1.0)
        shot = {n: [Face(0, landmark_box(a[n]), 0.9, a[n])] for n in range(120) if not 60 <= n <= 62}
        for n in range(120):  # A misses 3 frames; B (track 1) comes at 10, misses 40-44 and 80
            row = shot.setdefault(n, [])
            if n >= 10 and not 40 <= n <= 44 and n != 80:
                row.append(Face(1, landmark_box(b[n]), 0.8, b[n]))
        params = SmoothLandmarksParams()
        preroll = SmoothLandmarks.preroll(params)
        assert preroll == 43
        whole = smooth_run(params, shot, 0, (8,))
        assert {f.bucket for row in whole.values() for f in row} == {"frontal", "three_quarter", "side"}
        renumbered = {n: [replace(f, track=f.track + 5) for f in row] for n, row in shot.items()}
        for start, sizes in ((3, (1,)), (30, (7, 3)), (52, (16,)), (76, (5, 32))):
            part = smooth_run(params, renumbered, start, sizes)
            assert_same_from(whole, part, start + preroll)
            # the pre-roll is needed: the first frames differ from the whole run
            assert not np.array_equal(part[start + 2][0].landmarks, whole[start + 2][0].landmarks)


class TestAlignment:
    def test_fit_recovers_a_similarity_and_invert_affine_undoes_it(self):
        rng = np.random.default_rng(1)
        src = torch.from_numpy(rng.uniform(0, 100, (3, 20, 2)))
        m = torch.from_numpy(np.stack([similarity(a, s, 7, -3) for a, s in ((10, 1.5), (-80, 0.3), (170, 2.0))]))
        dst = src @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]
        for i in range(3):
            assert torch.allclose(fit_similarity(src[i:i + 1], dst[i]), m[i:i + 1], atol=1e-9)
        inv = invert_affine(m)
        back = dst @ inv[:, :, :2].transpose(1, 2) + inv[:, None, :, 2]
        assert torch.allclose(back, src, atol=1e-9)

    def test_template_fills_the_coverage(self):
        pts = template_points(256, 160)
        assert pts[:, 0].min() >= 47.5 and pts[:, 0].max() <= 207.5
        t = template_array(STABLE)
        assert t[:, 0].min() == pytest.approx(0, abs=1e-6) and t[:, 0].max() == pytest.approx(1, abs=1e-6)

    def test_landmarks_land_on_the_template(self, analyzer):
        face = detect(analyzer, packaged_photo("grace_hopper"))[0]
        m = crop_from_frame_matrices(torch.from_numpy(face.landmarks[None]), 256, 160)
        lm = torch.from_numpy(face.landmarks[list(STABLE), :2]).double()
        in_crop = lm @ m[0, :, :2].T + m[0, :, 2]
        assert (in_crop - template_points(256, 160)).norm(dim=1).mean() < 6  # px, a real face against the mean

    def test_rotated_and_scaled_photo_gives_the_same_crop(self, analyzer):
        image = packaged_photo("grace_hopper")
        s = similarity(25, 0.8, 120, -60)
        moved = cv2.warpAffine(image, s, (640, 560), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        crops, mats = [], []
        for img in (image, moved):
            face = detect(analyzer, img)[0]
            m = crop_from_frame_matrices(torch.from_numpy(face.landmarks[None]), 256, 160)
            crops.append(cut_crops(rgb_to_tensor(img[None]), torch.tensor([0]), m, 256))
            mats.append(invert_affine(m)[0])
        centre = slice(48, 208)
        diff = (crops[0] - crops[1])[..., centre, centre].abs().mean()
        assert diff < 0.05  # mean over the face, RGB in [0, 1]
        # frame_from_crop of the moved photo = the known similarity after that of the original
        corners = torch.tensor([[48.0, 48.0, 1.0], [207.0, 48.0, 1.0], [48.0, 207.0, 1.0], [207.0, 207.0, 1.0]],
                               dtype=torch.float64)
        want = torch.from_numpy(s) @ torch.cat([mats[0], torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
        assert ((corners @ mats[1].T) - (corners @ want.T)).norm(dim=1).max() < 4  # px on a 640 px frame

    def test_crop_then_paste_back_reproduces_the_face(self, analyzer):
        image = packaged_photo("astronaut")
        frames = rgb_to_tensor(image[None])
        face = detect(analyzer, image)[0]
        m = crop_from_frame_matrices(torch.from_numpy(face.landmarks[None]), 256, 160)
        crops = cut_crops(frames, torch.tensor([0]), m, 256)
        pasted = paste_crops(torch.zeros_like(frames), crops, torch.tensor([0]), invert_affine(m))
        x0, y0, x1, y1 = (int(v) for v in face.box)
        region = (slice(None), slice(None), slice(y0 + 10, y1 - 10), slice(x0 + 10, x1 - 10))
        assert (pasted[region] - frames[region]).abs().mean() < 0.02  # two bilinear resamplings

    def test_paste_lands_to_the_pixel(self):
        frames = torch.zeros(1, 3, 300, 400)
        frame_from_crop = torch.from_numpy(similarity(30, 1.7, 150, 40)[None])
        crops = torch.zeros(1, 3, 64, 64)
        crops[0, :, 20, 41] = 1.0  # one white pixel at crop (x=41, y=20)
        pasted = paste_crops(frames, crops, torch.tensor([0]), frame_from_crop)
        want = frame_from_crop[0].numpy() @ np.array([41.0, 20.0, 1.0])
        y, x = np.unravel_index(pasted[0, 0].argmax().item(), (300, 400))
        assert abs(x - want[0]) <= 1 and abs(y - want[1]) <= 1
        ys, xs = torch.meshgrid(torch.arange(300.0), torch.arange(400.0), indexing="ij")
        w = pasted[0, 0]
        centroid = ((xs * w).sum() / w.sum(), (ys * w).sum() / w.sum())
        assert math.dist((float(centroid[0]), float(centroid[1])), want) < 0.05  # sub-pixel exact

    def test_windowed_paste_equals_a_whole_frame_warp(self):
        import kornia

        torch.manual_seed(3)
        frames = torch.rand(3, 3, 200, 260)
        crops, masks = torch.rand(4, 3, 64, 64), torch.rand(4, 1, 64, 64)
        # faces inside, across the left and bottom edges, and a small far one
        m = torch.from_numpy(np.stack([similarity(20, 1.3, 60, 50), similarity(-35, 1.0, -30, 120),
                                       similarity(5, 2.1, 150, 110), similarity(0, 0.4, 230, 10)]))
        rows = torch.tensor([0, 1, 1, 2])
        got = paste_crops(frames, crops, rows, m, masks)
        want = frames.clone()
        full = kornia.geometry.transform.warp_affine(crops, m.float(), (200, 260), align_corners=True)
        alpha = kornia.geometry.transform.warp_affine(masks, m.float(), (200, 260), align_corners=True)
        for i, r in enumerate(rows.tolist()):
            want[r] = want[r] * (1 - alpha[i]) + full[i] * alpha[i]
        assert (got - want).abs().max() < 1e-4
        assert (got - frames).abs().amax((1, 2, 3)).min() > 0.1  # every frame got a face

    def test_model_input_is_the_central_coverage(self):
        crops = torch.zeros(2, 3, 256, 256)
        crops[..., 48:208, 48:208] = 1.0
        x = model_input(crops, 160, 64)
        assert x.shape == (2, 3, 64, 64) and torch.allclose(x, torch.ones_like(x))


@pytest.fixture(scope="module")
def grace_clip(tmp_path_factory):
    """40 frames of a pan and zoom over grace_hopper.jpg, with 6 blank frames in the middle."""
    frames = animate_photo(packaged_photo("grace_hopper"), 40, size=(384, 384))
    frames[20:26] = 90
    return write_clip(tmp_path_factory.mktemp("faces") / "grace_faces.mp4", frames)


def extract(cli, clip, out, *sets):
    return cli("run", GRAPHS / "extract.json", "--set", f"plate.path={clip}", "--set", f"faceset.path={out}",
               "--set", "faces.workers=1", "--quiet", *sets)


class TestExtractGraph:
    def test_faceset_from_an_animated_photo(self, cli, grace_clip, tmp_path):
        out = tmp_path / "faceset"
        r = extract(cli, grace_clip, out)
        assert r.code == 0, r.err
        records = [json.loads(line) for line in (out / "faces.jsonl").read_text().splitlines()]
        assert len(records) == 34  # every frame but the 6 blank ones
        assert {r["track"] for r in records} == {0}  # one track through the gap
        assert [r["frame"] for r in records] == [*range(20), *range(26, 40)]
        rec = records[5]
        assert rec["source"] == str(grace_clip) and rec["bucket"] == "frontal"
        assert len(rec["landmarks"]) == 478 and len(rec["frame_from_crop"]) == 2 and rec["blur"] > 0
        crop = cv2.imread(str(out / rec["file"]))
        assert crop.shape == (256, 256, 3)
        info = json.loads((out / "faceset.json").read_text())
        assert info["faces"] == 34 and info["crop"] == 256 and info["coverage"] == 160
        stats = info["stats"]["faces"]
        assert stats["frames_without_face"] == 6 and stats["frames_with_face"] == 34 and stats["tracks"] == 1

    def test_crop_matches_frame_from_crop(self, cli, grace_clip, tmp_path):
        out = tmp_path / "fs"
        assert extract(cli, grace_clip, out, "--frames", "0-4").code == 0
        rec = json.loads((out / "faces.jsonl").read_text().splitlines()[3])
        crop = cv2.cvtColor(cv2.imread(str(out / rec["file"])), cv2.COLOR_BGR2RGB)
        with __import__("av").open(str(grace_clip)) as c:
            frame = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][rec["frame"]]
        m = np.array(rec["frame_from_crop"])
        again = cv2.warpAffine(frame, m, (256, 256), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR)
        assert np.abs(again[48:208, 48:208].astype(int) - crop[48:208, 48:208]).mean() < 3

    def test_stats_and_filter(self, cli, grace_clip, tmp_path):
        out = tmp_path / "fs"
        assert extract(cli, grace_clip, out).code == 0
        r = cli("faceset", "stats", out)
        assert r.code == 0 and "34 faces from 1 source(s), 1 track(s)" in r.out and "frontal" in r.out
        r = cli("faceset", "filter", out, "--bucket", "side", "--out", tmp_path / "side")
        assert r.code == 0 and "kept 0 of 34" in r.out
        r = cli("faceset", "filter", out, "--min-change", "0", "--out", tmp_path / "all")
        assert "kept 34 of 34" in r.out
        blur = sorted(json.loads(line)["blur"] for line in (out / "faces.jsonl").read_text().splitlines())
        r = cli("faceset", "filter", out, "--min-change", "0", "--min-sharpness", blur[17], "--out", tmp_path / "sharp")
        assert "kept 17 of 34" in r.out
        assert len(list((tmp_path / "sharp").glob("*.png"))) == 17
        r = cli("faceset", "filter", out, "--bucket", "sideways", "--out", tmp_path / "x")
        assert r.code == 2 and "unknown" in r.err

    def test_filter_drops_near_duplicates(self, cli, tmp_path):
        still = np.repeat(animate_photo(packaged_photo("astronaut"), 1, size=(320, 320)), 12, axis=0)
        clip = write_clip(tmp_path / "still.mp4", still, audio=False)
        out = tmp_path / "fs"
        assert extract(cli, clip, out).code == 0
        r = cli("faceset", "filter", out, "--out", tmp_path / "dedup")
        assert r.code == 0 and "kept 1 of 12" in r.out

    def test_preview_draws_faces_and_crops(self, cli, grace_clip, tmp_path):
        from PIL import Image

        sets = ["--set", f"plate.path={grace_clip}", "--set", f"faceset.path={tmp_path / 'fs'}", "--set",
                "faces.workers=1"]
        for node, size in (("faces", (384, 384)), ("smooth", (384, 384)), ("crops", (256, 256))):
            png = tmp_path / f"{node}.png"
            r = cli("preview", GRAPHS / "extract.json", *sets, "--node", node, "--frame", "8", "-o", png)
            assert r.code == 0, r.err
            img = np.asarray(Image.open(png))
            assert img.shape[:2] == size
        drawn = np.asarray(Image.open(tmp_path / "faces.png")).astype(int)
        plain = tmp_path / "plate.png"
        cli("preview", GRAPHS / "extract.json", *sets, "--node", "plate", "--frame", "8", "-o", plain)
        changed = np.abs(drawn - np.asarray(Image.open(plain)).astype(int)).sum(2) > 60
        assert changed.sum() > 1500  # 478 landmarks, a box and a label
        assert not (tmp_path / "fs").exists()  # preview writes no faceset

    def test_a_face_leaving_the_frame(self, cli, tmp_path):
        photo = cv2.resize(packaged_photo("astronaut"), (320, 320))
        frames = np.zeros((24, 320, 320, 3), np.uint8)
        for i in range(24):  # the face slides out to the right, then is gone
            shift = 12 * i
            frames[i, :, shift:] = photo[:, :320 - shift]
        clip = write_clip(tmp_path / "leaving.mp4", frames, audio=False)
        out = tmp_path / "fs"
        r = extract(cli, clip, out)
        assert r.code == 0, r.err
        stats = json.loads((out / "faceset.json").read_text())["stats"]["faces"]
        assert stats["faces_at_frame_edge"] >= 1 and stats["frames_without_face"] >= 1
        assert stats["frames"] == 24 and stats["tracks"] == 1
        records = [json.loads(line) for line in (out / "faces.jsonl").read_text().splitlines()]
        assert records[0]["frame"] == 0 and cv2.imread(str(out / records[-1]["file"])).shape == (256, 256, 3)

    def test_several_faces_kept_or_largest(self, cli, tmp_path):
        a = cv2.resize(packaged_photo("grace_hopper"), (300, 352))
        b = cv2.resize(packaged_photo("astronaut"), (352, 352))
        clip = write_clip(tmp_path / "two.mp4", np.repeat(np.hstack([a, b])[None, :, :652], 6, axis=0), audio=False)
        for keep, faces, tracks in (("all", 12, 2), ("largest", 6, 1)):
            out = tmp_path / f"fs_{keep}"
            r = extract(cli, clip, out, "--set", f"faces.keep={keep}")
            assert r.code == 0, r.err
            records = [json.loads(line) for line in (out / "faces.jsonl").read_text().splitlines()]
            assert len(records) == faces and len({r["track"] for r in records}) == tracks


class TestResampleWithFaces:
    def test_downscale_to_face_height_and_back(self, cli, tmp_path):
        big = animate_photo(packaged_photo("grace_hopper"), 8, size=(1080, 920), zoom=0.0, pan=0.0, light=0.0)
        clip = write_clip(tmp_path / "big.mp4", big, audio=False)
        graph = write_graph(tmp_path / "g.json", {
            "plate": {"type": "Decode", "params": {"path": str(clip)}},
            "faces": {"type": "DetectFaces", "inputs": {"frames": "plate.frames"}, "params": {"workers": 1}},
            "down": {"type": "Downscale", "inputs": {"frames": "plate.frames", "faces": "faces.faces"}},
            "again": {"type": "DetectFaces", "inputs": {"frames": "down.frames"}, "params": {"workers": 1}},
            "up": {"type": "Upscale", "inputs": {"frames": "down.frames", "reference": "plate.frames"}},
            "out": {"type": "Encode", "inputs": {"frames": "up.frames"}, "params": {"path": "up.mkv", "codec": "ffv1"}},
        })
        from swapgraph.runtime.preview import evaluate_at
        from swapgraph.runtime.graph.load import load_graph_document
        from swapgraph.runtime.graph.validate import validate_graph
        from swapgraph.runtime.registry import default_registry

        g = validate_graph(load_graph_document(graph), default_registry(), path=graph)
        down = evaluate_at(g, "down", 3)
        scaled = down["faces"].faces[0][0]
        height = scaled.landmarks[:, 1].max() - scaled.landmarks[:, 1].min()
        assert height == pytest.approx(256, abs=3)
        assert down["frames"].info.height < 1080
        redetected = evaluate_at(g, "again", 3)["faces"].faces[0][0]
        assert np.abs(redetected.landmarks[list(STABLE), :2] - scaled.landmarks[list(STABLE), :2]).mean() < 3
        r = cli("run", graph, "--quiet")
        assert r.code == 0, r.err
        from helpers import decode_all

        assert decode_all(tmp_path / "up.mkv")[0].shape == (8, 1080, 920, 3)

    def test_downscale_never_enlarges_by_default(self, tmp_path):
        from swapgraph.nodes.resample import Downscale, DownscaleParams
        from swapgraph.runtime.ports import Frames, VideoInfo
        from fractions import Fraction

        lm = np.zeros((478, 3), np.float32)
        lm[:, 1] = np.linspace(10, 110, 478)  # a 100 px face
        info = VideoInfo(200, 160, Fraction(25), Fraction(1, 25))
        frames = Frames(torch.zeros(1, 3, 160, 200), [0], [0], [1], info)
        faces = Faces([[Face(0, landmark_box(lm), 1.0, lm)]], frames)
        for enlarge, want in ((False, (160, 200)), (True, (410, 512))):
            node = Downscale("d", DownscaleParams(enlarge=enlarge), torch.device("cpu"))
            node.open(None)
            out = node.process(frames, faces)
            assert tuple(out["frames"].pixels.shape[-2:]) == want


def test_crossed_bucket_thresholds_are_refused_by_both_face_nodes():
    from swapgraph.nodes.face.nodes import DetectFacesParams, SmoothLandmarks, SmoothLandmarksParams
    from swapgraph.runtime.errors import NodeError
    from swapgraph.runtime.node import RunContext

    for cls, params in ((DetectFaces, DetectFacesParams), (SmoothLandmarks, SmoothLandmarksParams)):
        node = cls("n", params(frontal_max_yaw=40, side_min_yaw=30), torch.device("cpu"))
        with pytest.raises(NodeError, match="side_min_yaw .* must exceed frontal_max_yaw"):
            node.open(RunContext())
