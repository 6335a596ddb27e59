"""Detection then mesh, on a pool of worker processes: frames in, untracked faces out."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import cv2
import numpy as np

from ..ports import Face
from . import landmarker
from .tracking import box_iou

MESH_SIZE = 256  # side of the face crop the mesh model gets (it runs at 192 internally)
CROP_EXPAND = 1.9  # crop side / detected box side: the whole head with margin


class FaceAnalyzer:
    """Detection then mesh, on ``workers`` processes (1: in this process), frame order kept.

    With a pool, frames are downscaled to ``detect_size`` before they travel (the
    detector works at 128-192 px anyway) and each face travels as a 256 px crop; in this
    process nothing is copied or resized for detection.
    """

    def __init__(self, workers: int, detector: str, min_confidence: float, detect_size: int) -> None:
        self.detect_size = detect_size
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self.local: landmarker.MediaPipeFaces | None = None
        if workers > 1:
            # spawn, not fork: the run's threads (and torch's) must not be forked mid-flight
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=landmarker.init_worker,
                                            initargs=(detector, min_confidence))
        else:
            self.local = landmarker.MediaPipeFaces(detector, min_confidence)

    def _map(self, name: str, items: list) -> list:
        if not items:
            return []
        if self.pool is None:
            return [getattr(self.local, name)(x) for x in items]
        chunk = max(1, len(items) // (self.workers * 2))
        worker_fn = {"detect": landmarker.detect, "landmarks": landmarker.landmarks}[name]
        return list(self.pool.map(worker_fn, items, chunksize=chunk))

    def analyze(self, images: np.ndarray, max_faces: int, min_face_size: float) -> list[list[Face]]:
        """Faces (untracked) in each RGB uint8 image of (B, H, W, 3)."""
        _, h, w, _ = images.shape
        f = min(1.0, self.detect_size / max(h, w)) if self.pool is not None else 1.0
        if f < 0.9:
            interp = cv2.INTER_AREA if f < 0.5 else cv2.INTER_LINEAR
            small = [cv2.resize(im, (round(w * f), round(h * f)), interpolation=interp) for im in images]
        else:
            small = list(images)
        detections = self._map("detect", small)
        jobs: list[tuple[int, float, float, float, float]] = []
        crops = []
        for i, found in enumerate(detections):
            boxes = [(x * w, y * h, bw * w, bh * h, s) for x, y, bw, bh, s in found
                     if min(bw * w, bh * h) >= min_face_size]
            boxes.sort(key=lambda b: -b[2] * b[3])
            for x, y, bw, bh, score in boxes[:max_faces]:
                side = max(bw, bh) * CROP_EXPAND
                x0, y0 = x + bw / 2 - side / 2, y + bh / 2 - side / 2
                k = MESH_SIZE / side
                # crop pixels = k * (frame pixels - corner)
                crop_from_frame = np.array([[k, 0, -k * x0], [0, k, -k * y0]], np.float64)
                crops.append(cv2.warpAffine(images[i], crop_from_frame, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR,
                                            borderMode=cv2.BORDER_CONSTANT))
                jobs.append((i, score, x0, y0, k))
        meshes = self._map("landmarks", crops)
        faces: list[list[Face]] = [[] for _ in range(len(images))]
        for (i, score, x0, y0, k), lm in zip(jobs, meshes):
            if lm is None:
                continue
            frame_lm = lm / k
            frame_lm[:, 0] += x0
            frame_lm[:, 1] += y0
            faces[i].append(Face(track=-1, box=landmark_box(frame_lm), score=score, landmarks=frame_lm))
        for row in faces:  # two detections of one face give one mesh twice: keep the first
            row[:] = [f for n, f in enumerate(row) if all(box_iou(f.box, g.box) < 0.6 for g in row[:n])]
        return faces

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        if self.local is not None:
            self.local.close()
            self.local = None


def landmark_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) around a face's landmarks, in the landmarks' pixels."""
    x0, y0 = landmarks[:, :2].min(0)
    x1, y1 = landmarks[:, :2].max(0)
    return float(x0), float(y0), float(x1), float(y1)
