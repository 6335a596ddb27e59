"""Facesets on the training device: crops, face-oval masks and feature masks, read once.

Masks come from each face's landmarks with the nodes' mesh regions (``nodes/mesh_regions.json``):
the face oval the mask channel learns, and the eyes, brows and lips the loss weighs more.
A crop that is missing, unreadable or of another size than the faceset's is a UsageError
naming the file. Each faceset's identity (its faces and a hash of ``faces.jsonl``) goes into
the checkpoint, so a resume can tell it was given the same faces.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from swapgraph.nodes.color import EXCLUDED
from swapgraph.nodes.faceset import FACES_FILE
from swapgraph.nodes.faceset import INFO_FILE as FACESET_INFO
from swapgraph.nodes.faceset import read_faceset
from swapgraph.nodes.mask import polygon_masks, regions
from swapgraph.nodes.ports import BUCKETS
from swapgraph.runtime.errors import UsageError


@dataclass
class FaceData:
    """One faceset on the training device: crops (N, 3, S, S) uint8, face masks (N, 1, S, S)
    uint8 (the oval) and feature masks (N, 1, S, S) uint8 (eyes, brows and lips, grown a little)."""

    name: str
    crops: torch.Tensor
    masks: torch.Tensor
    features: torch.Tensor
    coverage: int
    train: torch.Tensor  # indices
    val: torch.Tensor
    #: what a resume must be given again: {"path", "faces", "sha256"} (see faceset_identity); for a
    #: pool (see load_pool) {"faces", "sha256", "facesets": [each faceset's]}
    identity: dict


_CV_LOG_ERROR = 2  # cv2.utils.logging.LOG_LEVEL_ERROR, which this build's cv2 does not expose


def faceset_identity(folder: Path, faces: int) -> dict[str, str | int]:
    """Which faceset a run trained on: its path, the faces it used and the SHA-256 of its
    ``faces.jsonl`` (the content decides: the same file at another path is the same faceset)."""
    h = hashlib.sha256()
    with (Path(folder) / FACES_FILE).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"path": str(Path(folder).resolve()), "faces": faces, "sha256": h.hexdigest()}


def read_crop(path: Path, size: int | None) -> np.ndarray:
    """A faceset's crop as RGB uint8 (S, S, 3); UsageError naming the file when it is missing,
    not an image, or not ``size`` px square (None: any square). OpenCV's own warning about a
    damaged file (a stray line on stderr beside ours) is silenced while it decodes."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        raise UsageError(f"{path}: missing; the faceset lists it: extract the faceset again") from None
    level = cv2.getLogLevel()
    cv2.setLogLevel(_CV_LOG_ERROR)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    finally:
        cv2.setLogLevel(level)
    if img is None:
        raise UsageError(f"{path}: not a readable image (damaged or truncated); extract the faceset again")
    h, w = img.shape[:2]
    if h != w or (size is not None and h != size):
        raise UsageError(f"{path}: a {w}x{h} px crop in a faceset of {size or h} px square crops; extract the faceset "
                         "again (crops of one faceset come from one Align)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _in_crop(landmarks: np.ndarray, frame_from_crop: np.ndarray) -> np.ndarray:
    """Landmarks (478, 2+) in frame pixels -> (478, 2) in crop pixels."""
    m = np.vstack([np.asarray(frame_from_crop), [0, 0, 1]])
    crop_from_frame = np.linalg.inv(m)[:2]
    return np.asarray(landmarks)[:, :2] @ crop_from_frame[:, :2].T + crop_from_frame[:, 2]


def _hull_mask(landmarks: np.ndarray, frame_from_crop: np.ndarray, size: int) -> np.ndarray:
    """The face oval as a filled mask in crop pixels (uint8 0/255)."""
    pts = _in_crop(landmarks, frame_from_crop)[regions()["face_oval"]]
    # the regions hold index sets: walk the oval around its centre (an oval is star-shaped about
    # it) so the polygon follows the jaw line, hollows included, where a convex hull would not
    centre = pts.mean(0)
    around = pts[np.argsort(np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0]))]
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, np.round(around).astype(np.int32), 255)
    return mask


def _feature_mask(landmarks: np.ndarray, frame_from_crop: np.ndarray, size: int) -> np.ndarray:
    """Eyes, brows and lips as a filled mask in crop pixels (uint8 0/255), grown by 3 px:
    where a viewer looks first, so the loss weighs them more (``feature_weight``)."""
    pts = _in_crop(landmarks, frame_from_crop)
    mask = polygon_masks(pts[None], [regions()[n] for n in EXCLUDED], size)[0]
    return cv2.dilate(mask, np.ones((7, 7), np.uint8)) * 255


def min_faces(val_faces: int) -> int:
    """The faces a faceset (or a bucket of it) needs to train: the held-out ones and 8 to learn from."""
    return val_faces + 8


def load_faceset(folder: Path, device: torch.device, bucket: str | None, val_faces: int, seed: int) -> FaceData:
    """Read a faceset once; hold out ``val_faces`` faces chosen by ``seed`` for validation.

    UsageError, before anything is held, when ``folder`` is not a faceset, has too few faces
    (in ``bucket``, if given) or a crop is missing, unreadable or of another size.
    """
    folder = Path(folder)
    records = _records(folder, bucket)
    if len(records) < min_faces(val_faces):
        raise UsageError(f"{folder}: {len(records)} faces{f' in bucket {bucket}' if bucket else ''}; training needs "
                         f"at least {min_faces(val_faces)} ({val_faces} are held out for validation); extract more")
    return _on_device(folder.name, [(folder, records)], device, val_faces, seed,
                      faceset_identity(folder, len(records)))


def load_pool(folders: list[Path], device: torch.device, bucket: str | None, val_faces: int, seed: int) -> FaceData:
    """Read the faces of ``folders`` once, pooled as one identity (a base's: many people's faces);
    hold out ``val_faces`` faces of the pool chosen by ``seed``. Its identity holds the pool's faces,
    a SHA-256 over its facesets' in order (what a resume must be given again) and each faceset's
    own identity (``facesets``).

    UsageError, before anything is held, when a folder is not a faceset, holds no faces (in
    ``bucket``), is given twice (by content), was aligned unlike the first, or the pool has too few
    faces; or when a crop is missing, unreadable or of another size.
    """
    folders = [Path(f) for f in folders]
    if not folders:
        raise UsageError("no facesets: a base is trained on the faces of many people; give their facesets")
    read = [(f, _records(f, bucket)) for f in folders]
    identities = []
    for folder, records in read:
        if not records:
            raise UsageError(f"{folder}: no faces{f' in bucket {bucket}' if bucket else ''}; extract some, or leave it "
                             "out")
        identity = faceset_identity(folder, len(records))
        same = [i for i in identities if i["sha256"] == identity["sha256"]]
        if same:
            raise UsageError(f"{folder}: the same faces as {same[0]['path']}; give each faceset once")
        identities.append(identity)
    aligned = {f: _alignment(f) for f in folders}
    first = folders[0]
    for folder in folders[1:]:
        (c0, s0), (c, s) = aligned[first], aligned[folder]
        if c != c0 or None not in (s, s0) and s != s0:
            raise UsageError(f"{first} and {folder} were aligned differently (coverage {c0} and {c} of {s0 or '?'} "
                             f"and {s or '?'} px crops); extract every faceset of a base with one Align")
    total = sum(len(r) for _, r in read)
    if total < min_faces(val_faces):
        raise UsageError(f"{total} faces in {len(folders)} faceset{'s' if len(folders) > 1 else ''}"
                         f"{f' (bucket {bucket})' if bucket else ''}; training needs at least {min_faces(val_faces)} "
                         f"({val_faces} are held out for validation); add facesets or extract more")
    pool = hashlib.sha256("".join(i["sha256"] for i in identities).encode()).hexdigest()
    return _on_device("pool", read, device, val_faces, seed, {"faces": total, "sha256": pool, "facesets": identities})


def _records(folder: Path, bucket: str | None) -> list[dict]:
    if bucket is not None and bucket not in BUCKETS:
        raise UsageError(f"bucket {bucket!r}: unknown; choose from {', '.join(BUCKETS)}")
    return [r for r in read_faceset(folder) if bucket is None or r["bucket"] == bucket]


def _info(folder: Path) -> dict:
    return json.loads((folder / FACESET_INFO).read_text()) if (folder / FACESET_INFO).is_file() else {}


def _alignment(folder: Path) -> tuple[int, int | None]:
    """(coverage, crop size) from ``faceset.json``; the size None when it does not say (the crops tell)."""
    info = _info(folder)
    return int(info.get("coverage", 160)), info["crop"] if isinstance(info.get("crop"), int) else None


def _on_device(name: str, read: list[tuple[Path, list[dict]]], device: torch.device, val_faces: int, seed: int,
               identity: dict) -> FaceData:
    """The crops and masks of ``read`` (facesets and their records, in order) on ``device``."""
    crops, masks, features = [], [], []
    size = None
    for folder, records in read:
        info = _info(folder)
        size = info.get("crop") if isinstance(info.get("crop"), int) else size
        for r in records:
            img = read_crop(folder / r["file"], size)
            size = img.shape[0]  # no size in faceset.json: the first crop's is the faceset's
            crops.append(img)
            masks.append(_hull_mask(r["landmarks"], r["frame_from_crop"], size))
            features.append(_feature_mask(r["landmarks"], r["frame_from_crop"], size))
    crops_t = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous().to(device)
    masks_t = torch.from_numpy(np.stack(masks))[:, None].to(device)
    features_t = torch.from_numpy(np.stack(features))[:, None].to(device)
    order = torch.randperm(len(crops), generator=torch.Generator().manual_seed(seed))
    coverage = int(_info(read[0][0]).get("coverage", 160))
    return FaceData(name, crops_t, masks_t, features_t, coverage, order[val_faces:].to(device),
                    order[:val_faces].to(device), identity)
