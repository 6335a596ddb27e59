"""MediaPipe face detection and mesh, as DetectFaces' workers run them.

Kept light on purpose: worker processes import this module (numpy, OpenCV, MediaPipe)
and nothing of torch or the rest of swapgraph, so a pool starts in about a second per
worker.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import signal
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

Detection = tuple[float, float, float, float, float]  # x, y, w, h (relative to the image), score


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what MediaPipe's C++ layer prints while it loads and first runs its graphs."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _warm_up_face() -> np.ndarray | None:
    """matplotlib's grace_hopper.jpg read with OpenCV (without importing matplotlib)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    img = cv2.imread(str(path))
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class MediaPipeFaces:
    """BlazeFace detection and the refined 478-point face mesh, loaded once.

    ``detector``: ``full`` (faces up to ~5 m), ``short`` (within ~2 m), or ``auto``: full
    range, and short range on images where full range finds nothing (close-ups that fill
    the frame).
    """

    def __init__(self, detector: str, min_confidence: float) -> None:
        import mediapipe as mp

        fd = mp.solutions.face_detection
        with _quiet_native_stderr():
            self.full = (fd.FaceDetection(model_selection=1, min_detection_confidence=min_confidence)
                         if detector in ("full", "auto") else None)
            self.short = (fd.FaceDetection(model_selection=0, min_detection_confidence=min_confidence)
                          if detector in ("short", "auto") else None)
            self.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                                        max_num_faces=1, min_detection_confidence=0.3)
            face = _warm_up_face()
            if face is not None:  # the first inferences print their own warnings
                self.detect(face)
                self.landmarks(cv2.resize(face[100:400, 110:410], (256, 256)))

    @staticmethod
    def _run(model, image: np.ndarray) -> list[Detection]:
        found = []
        for d in model.process(image).detections or ():
            b = d.location_data.relative_bounding_box
            found.append((b.xmin, b.ymin, b.width, b.height, float(d.score[0])))
        return found

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image."""
        found = self._run(self.full, image) if self.full is not None else []
        if not found and self.short is not None:
            found = self._run(self.short, image)
        return found

    def landmarks(self, crop: np.ndarray) -> np.ndarray | None:
        """478 landmarks (x, y, z) in crop pixels of the face in an RGB uint8 crop, or None."""
        result = self.mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        h, w = crop.shape[:2]
        lm = result.multi_face_landmarks[0].landmark
        return np.array([(p.x, p.y, p.z) for p in lm], np.float32) * np.array([w, h, w], np.float32)

    def close(self) -> None:
        for model in (self.full, self.short, self.mesh):
            if model is not None:
                model.close()


# --- pool workers: one MediaPipeFaces per process ---------------------------------------

_worker: MediaPipeFaces | None = None


def init_worker(detector: str, min_confidence: float) -> None:
    global _worker
    if multiprocessing.parent_process() is not None:
        # Ctrl-C reaches the whole process group: the run shuts its pool down itself
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = MediaPipeFaces(detector, min_confidence)


def detect(image: np.ndarray) -> list[Detection]:
    return _worker.detect(image)


def landmarks(crop: np.ndarray) -> np.ndarray | None:
    return _worker.landmarks(crop)
