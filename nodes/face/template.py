"""The canonical face: where chosen mesh landmarks sit on a frontal, upright face.

MediaPipe's wheel ships the mesh model but not its canonical face geometry, so swapgraph
keeps its own: ``template.json``, built by ``python -m swapgraph.nodes.face.template``
from the two face photos that installed packages ship (matplotlib's grace_hopper.jpg,
scikit-image's astronaut), each with its mirror image, aligned in 3D and averaged, then
turned so the face looks straight at the camera. The result is symmetric and frontal by
construction; head pose is measured against it.

Convention: x to the subject's left (image right), y down, z away from the camera; units
are the template's own (2D: the classic alignment box, see ``ALIGN_BOX``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..geometry import fit_similarity

TEMPLATE_FILE = Path(__file__).with_name("template.json")

#: mesh indices of the landmarks the template holds
#: eyes (outer, inner corners; iris centres), brows, nose bridge to tip, alar creases,
#: nostrils; then mouth corners, lips, chin, forehead, cheeks at the ears
POINTS = (33, 133, 362, 263, 468, 473, 70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
          168, 6, 197, 195, 5, 4, 129, 358, 98, 327, 61, 291, 0, 17, 152, 10, 234, 454)
#: the rigid part of the face: what alignment and head pose fit (the mouth and jaw move)
STABLE = POINTS[:26]
#: (subject's right, subject's left) pairs; the other points lie on the midline
MIRROR_PAIRS = ((33, 263), (133, 362), (468, 473), (70, 300), (63, 293), (105, 334), (66, 296),
                (107, 336), (129, 358), (98, 327), (61, 291), (234, 454))
#: the classic alignment box, in template units (0..1 both ways): brow ends across, brow
#: tops to the lower lip down; ``Align`` maps it onto the central ``coverage`` pixels
ALIGN_BOX = {"x": (70, 300), "y_top": (70, 63, 105, 66, 107, 336, 296, 334, 293, 300), "y_bottom": 17}


@lru_cache(maxsize=1)
def template() -> dict[int, np.ndarray]:
    """``{mesh index: (x, y, z)}`` of the canonical frontal face, float64."""
    data = json.loads(TEMPLATE_FILE.read_text())
    return {int(k): np.asarray(v, np.float64) for k, v in data["points"].items()}


def template_array(indices=STABLE) -> np.ndarray:
    """(K, 3) template coordinates for ``indices``."""
    t = template()
    return np.stack([t[i] for i in indices])


def _mirror(points: np.ndarray) -> np.ndarray:
    """A face's mirror image as the same landmark list (left and right swapped)."""
    out = points.copy()
    out[:, 0] = -out[:, 0]
    pos = {p: n for n, p in enumerate(POINTS)}
    for a, b in MIRROR_PAIRS:
        out[[pos[a], pos[b]]] = out[[pos[b], pos[a]]]
    return out


def _similarity_3d(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``src`` (K, 3) moved onto ``dst`` (K, 3) by the least-squares similarity."""
    m = fit_similarity(torch.from_numpy(src)[None], torch.from_numpy(dst))[0].numpy()
    return src @ m[:, :3].T + m[:, 3]


def build_template(faces: list[np.ndarray]) -> dict[int, list[float]]:
    """Average faces ((K, 3) arrays over ``POINTS``) and their mirrors into a frontal template."""
    ref = faces[0] - faces[0].mean(0)
    shapes = [_similarity_3d(f, ref) for face in faces for f in (face, _mirror(face))]
    mean = np.mean([_similarity_3d(s, ref) for s in shapes], axis=0)
    pos = {p: n for n, p in enumerate(POINTS)}
    # turn it to face the camera: x from right to left pairs, y from forehead to chin
    x = np.mean([mean[pos[b]] - mean[pos[a]] for a, b in MIRROR_PAIRS], axis=0)
    x /= np.linalg.norm(x)
    y = mean[pos[152]] - mean[pos[10]]
    y -= x * (y @ x)
    y /= np.linalg.norm(y)
    frame = np.stack([x, y, np.cross(x, y)])
    upright = (mean - mean.mean(0)) @ frame.T
    left, right = upright[pos[ALIGN_BOX["x"][0]], 0], upright[pos[ALIGN_BOX["x"][1]], 0]
    top = min(upright[pos[i], 1] for i in ALIGN_BOX["y_top"])
    bottom = upright[pos[ALIGN_BOX["y_bottom"]], 1]
    scale = np.array([right - left, bottom - top, right - left])
    unit = (upright - np.array([left, top, upright[:, 2].mean()])) / scale
    return {p: [round(float(v), 6) for v in unit[pos[p]]] for p in POINTS}


def _main() -> None:
    import mediapipe as mp

    from swapgraph.nodes.photos import packaged_photo

    faces = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as mesh:
        for name in ("grace_hopper", "astronaut"):
            img = packaged_photo(name)
            h, w = img.shape[:2]
            lm = mesh.process(img).multi_face_landmarks[0].landmark
            faces.append(np.array([[lm[i].x * w, lm[i].y * h, lm[i].z * w] for i in POINTS]))
    points = build_template(faces)
    TEMPLATE_FILE.write_text(json.dumps({
        "about": "canonical frontal face for swapgraph; made by python -m swapgraph.nodes.face.template",
        "convention": "x to the subject's left, y down, z away from the camera; the classic alignment box is 0..1",
        "points": {str(k): v for k, v in points.items()}}, indent=1) + "\n")
    print(f"wrote {TEMPLATE_FILE}")


if __name__ == "__main__":
    _main()
