"""Who a face looks like: dlib's face-recognition descriptor, offline.

dlib's ResNet (``dlib_face_recognition_resnet_model_v1``, 128-d, LFW 99.38 %) maps a face
to a point where two photos of one person lie within 0.6 of each other (Euclidean) and
two people further apart. Its weights ship in the ``face-recognition-models`` package
and run on the CPU through the ``dlib-bin`` wheel: nothing is downloaded at run time.

Alignment: dlib's 5-point chip (eye corners and the base of the nose, 150 px, padding
0.25) built from the MediaPipe landmarks we already have (``FIVE_POINTS``), so no second
face detector runs and a faceset's crops, a plate and a swapped output are aligned by the
same points. On the packaged photos this moves a descriptor by 0.09-0.12 from dlib's own
5-point predictor's, far less than the 0.6 between people, and references and frames
are all aligned the same way.

Convention: ``identity_position`` is 0 at A's references and 1 at B's: the descriptor
projected on the line from A's mean descriptor to B's.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from swapgraph.runtime.errors import UsageError

from .faceset import FACES_FILE, read_faceset

#: MediaPipe mesh indices in dlib's 5-point order: image-right eye outer and inner corner,
#: image-left eye outer and inner corner, base of the nose (matched against dlib's
#: predictor on the packaged photos: each within 2 px).
FIVE_POINTS = (263, 362, 33, 133, 2)
REFERENCE_FACES = 32
INSTALL_FIX = "install them with `pip install dlib-bin face-recognition-models`"


@lru_cache(maxsize=1)
def _models_folder() -> Path:
    # find_spec, not import: the package's __init__ needs pkg_resources, gone from new setuptools
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"identity: the face-recognition weights are missing; {INSTALL_FIX}")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class FaceDescriber:
    """dlib's 128-d descriptor of faces given by their MediaPipe landmarks; one per process."""

    _lock = threading.Lock()
    _shared: FaceDescriber | None = None

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError:
            raise UsageError(f"identity: dlib is missing; {INSTALL_FIX}") from None
        path = _models_folder() / "dlib_face_recognition_resnet_model_v1.dat"
        if not path.is_file():
            raise UsageError(f"identity: {path} is missing; {INSTALL_FIX}")
        self.dlib = dlib
        self.net = dlib.face_recognition_model_v1(str(path))

    @classmethod
    def shared(cls) -> FaceDescriber:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def describe(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """image: RGB uint8 (H, W, 3); landmarks: MediaPipe (478, 2+) in its pixels. -> (128,) float32."""
        x0, y0 = landmarks[:, :2].min(0)
        x1, y1 = landmarks[:, :2].max(0)
        d = self.dlib
        shape = d.full_object_detection(d.rectangle(int(x0), int(y0), int(x1), int(y1)),
                                        [d.point(int(round(x)), int(round(y))) for x, y in landmarks[FIVE_POINTS, :2]])
        with self._lock:  # one network, many QC threads
            return np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(image), shape), np.float32)


@dataclass(frozen=True)
class References:
    """Descriptors of two facesets: ``a`` (N, 128) the plate's person, ``b`` (M, 128) the one put on."""

    a: np.ndarray
    b: np.ndarray
    a_path: str
    b_path: str

    def measure(self, descriptor: np.ndarray) -> dict[str, float]:
        """Per-frame numbers for one face's (128,) descriptor: mean distance to A's and to B's
        faces, and its position on the A-B line (``identity``: 0 = A, 1 = B)."""
        return {"identity_dist_a": float(np.linalg.norm(self.a - descriptor, axis=1).mean()),
                "identity_dist_b": float(np.linalg.norm(self.b - descriptor, axis=1).mean()),
                "identity": identity_position(descriptor, self.a.mean(0), self.b.mean(0))}


def identity_position(x: np.ndarray, mean_a: np.ndarray, mean_b: np.ndarray) -> float:
    """Where (128,) descriptor ``x`` projects on the line from ``mean_a`` (0) to ``mean_b`` (1)."""
    axis = mean_b - mean_a
    return float((x - mean_a) @ axis / max(float(axis @ axis), 1e-12))


def faceset_descriptors(folder: Path, limit: int = REFERENCE_FACES) -> np.ndarray:
    """Descriptors (N, 128) of up to ``limit`` faces of a faceset, spread evenly over it."""
    folder = Path(folder)
    if not (folder / FACES_FILE).is_file():
        raise UsageError(f"{folder}: not a faceset (no {FACES_FILE}); give a folder written by WriteFaceset "
                         "(swapgraph extract)")
    records = list(read_faceset(folder))
    if not records:
        raise UsageError(f"{folder / FACES_FILE}: no faces; extract the faceset again from a clip with the face")
    picks = np.unique(np.linspace(0, len(records) - 1, min(limit, len(records))).round().astype(int))
    describer = FaceDescriber.shared()
    out = []
    for i in picks:
        r = records[i]
        crop = cv2.imread(str(folder / r["file"]), cv2.IMREAD_COLOR)
        if crop is None:
            raise UsageError(f"{folder / r['file']}: missing or unreadable crop; extract the faceset again")
        m = np.asarray(r["frame_from_crop"], np.float64)  # crop -> frame; landmarks are in frame pixels
        crop_from_frame = cv2.invertAffineTransform(m)
        pts = np.asarray(r["landmarks"], np.float64)[:, :2] @ crop_from_frame[:, :2].T + crop_from_frame[:, 2]
        out.append(describer.describe(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), pts))
    return np.stack(out)


def load_references(a: Path, b: Path, limit: int = REFERENCE_FACES) -> References:
    """Both facesets' descriptors; UsageError naming the folder when one is not a faceset."""
    return References(faceset_descriptors(a, limit), faceset_descriptors(b, limit), str(a), str(b))


def references_from_sidecar(sidecar: dict[str, Any]) -> tuple[Path, Path] | None:
    """The (A, B) facesets the output's swap model was trained on, from its sidecar's params.

    A is the plate's person: with ``direction`` ``b_to_a`` the model's ``b`` faceset. None
    when no Swap params, no model.json or no faceset folder on this machine is found.
    """
    from .swap_model import ModelError, bank_models, read_info

    for params in (sidecar.get("params") or {}).values():
        if not isinstance(params, dict) or "model" not in params or "direction" not in params:
            continue
        try:
            model = next(iter(bank_models(Path(params["model"])).values()))
            names = read_info(model).names
        except (ModelError, OSError, StopIteration):
            continue
        plate, put_on = ("b", "a") if params["direction"] == "b_to_a" else ("a", "b")
        if plate in names and put_on in names:
            found = tuple(Path(names[k]) for k in (plate, put_on))
            if all((p / FACES_FILE).is_file() for p in found):
                return found  # type: ignore[return-value]
    return None


def read_sidecar(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
