"""Facesets: folders of aligned face crops that training reads.

A faceset is a folder of PNG crops at the full ``crop`` size (256 px by default, so
models of any input size train from the same faceset), ``faces.jsonl`` with one line per
face (source file, frame, pts, track, box, landmarks, pose, bucket, blur score,
``frame_from_crop``), and ``faceset.json`` saying how it was made.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
from pydantic import Field

from swapgraph.runtime.errors import ArgumentError, UsageError
from swapgraph.runtime.images import frames_to_rgb8
from swapgraph.runtime.files import Kind, OutputLocks, publish, replace_problem, temp_path_for, write_folder_marker
from swapgraph.runtime.node import NodeSchema, OutputPath, Params, Port, RunContext, Sink
from swapgraph.runtime.provenance import swapgraph_version, versions

from .ports import BUCKETS, FaceCrops

FACES_FILE = "faces.jsonl"
INFO_FILE = "faceset.json"


def sharpness(crop_rgb: np.ndarray, coverage: int) -> float:
    """Blur score of a crop: variance of the Laplacian over the central ``coverage`` pixels.

    crop_rgb: (S, S, 3) uint8. Higher is sharper; a face enlarged from a few plate pixels
    scores low, which is how ``faceset filter --min-sharpness`` drops it.
    """
    s = crop_rgb.shape[0]
    pad = (s - coverage) // 2
    gray = cv2.cvtColor(crop_rgb[pad:pad + coverage, pad:pad + coverage], cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


class WriteFacesetParams(Params):
    path: OutputPath = Field(description="faceset folder to write (replaced when the run succeeds)")


class WriteFaceset(Sink):
    """Write aligned crops as a faceset: PNG crops plus ``faces.jsonl``.

    One PNG per face at the full crop size, named ``SOURCE_FRAME_tTRACK.png``; one JSON
    line per face with its source file, frame, pts, track, box, score, 478 landmarks
    (frame pixels), pose, orientation bucket, blur score and ``frame_from_crop``. The
    folder is written under a temporary name and replaces ``path`` when the run succeeds.
    """

    schema = NodeSchema(inputs={"crops": Port(FaceCrops, "aligned crops")}, params=WriteFacesetParams,
                        devices=("cpu",), category="faceset")

    params: WriteFacesetParams

    def open(self, ctx: RunContext) -> None:
        self.final = Path(self.params.path)
        self.temp = temp_path_for(self.final)
        shutil.rmtree(self.temp, ignore_errors=True)
        self.temp.mkdir(parents=True)
        self.lines = (self.temp / FACES_FILE).open("w", encoding="utf-8")
        self.count = 0
        self.buckets: Counter[str] = Counter()
        self.geometry: dict[str, int] = {}

    def process(self, crops: FaceCrops) -> dict[str, Any]:
        if not len(crops):
            return {}
        frames = crops.frames
        info = frames.info
        stem = Path(info.source).stem if info.source else "frames"
        self.geometry = {"crop": crops.crop_size, "coverage": crops.coverage, "size": crops.size}
        images = frames_to_rgb8(crops.crops)
        matrices = crops.frame_from_crop.cpu().numpy()
        for image, m, row, face in zip(images, matrices, crops.row, crops.faces):
            n, pts = frames.index[row], frames.pts[row]
            name = f"{stem}_{n:06d}_t{face.track}.png"
            cv2.imwrite(str(self.temp / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
            record = {
                "file": name, "source": str(info.source) if info.source else None, "frame": n, "pts": pts,
                "time": round(float((pts - info.start_pts) * info.time_base), 6), "track": face.track,
                "box": [round(v, 2) for v in face.box], "score": round(face.score, 4),
                "pose": [round(v, 2) for v in face.pose], "bucket": face.bucket,
                "blur": round(sharpness(image, crops.coverage), 2),
                "frame_from_crop": [[float(v) for v in r] for r in m],
                "landmarks": np.round(face.landmarks, 2).tolist(),
            }
            self.lines.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.count += 1
            self.buckets[face.bucket] += 1
        return {}

    def finish(self) -> None:
        self.lines.close()

    def commit(self, ctx: RunContext) -> None:
        info = {"statement": "Aligned face crops for training swapgraph models; "
                             "videos made with those models are synthetic media.", "generator": f"swapgraph {swapgraph_version()}", "faces": self.count,
                "buckets": dict(self.buckets), **self.geometry,
                "graph": {"name": ctx.graph_name, "hash": ctx.graph_hash}, "versions": versions(),
                "params": ctx.summary.get("params"), "stats": ctx.summary.get("stats")}
        (self.temp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        write_folder_marker(self.temp, "faceset", [p.name for p in self.temp.iterdir()])
        ctx.publication.stage(self.temp, self.final)

    @classmethod
    def output_kind(cls, params: Params, name: str) -> Kind:
        return "folder"

    def abort(self) -> None:
        lines = getattr(self, "lines", None)
        if lines is not None:
            lines.close()
        temp = getattr(self, "temp", None)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

    def stats(self) -> dict[str, Any]:
        return {"faces_written": getattr(self, "count", 0)}


# --- reading and managing facesets -----------------------------------------------------

def read_faceset(folder: Path) -> Iterator[dict[str, Any]]:
    """The records of a faceset's ``faces.jsonl``; UsageError if ``folder`` is not a faceset."""
    path = Path(folder) / FACES_FILE
    if not path.is_file():
        raise UsageError(f"{folder}: not a faceset (no {FACES_FILE}); give a folder written by WriteFaceset")
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                raise UsageError(f"{path}: line {number} is not JSON; the faceset is damaged, extract it again") from None


def _histogram(values: list[float], edges: list[float], width: int = 40) -> list[str]:
    counts, _ = np.histogram(values, bins=edges)
    top = max(1, counts.max()) if len(counts) else 1
    return [f"  {lo:>8.1f} .. {hi:<8.1f} {c:>6}  {'#' * round(width * c / top)}"
            for lo, hi, c in zip(edges[:-1], edges[1:], counts)]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _record_problem(record: Any) -> str | None:
    """Why a line of ``faces.jsonl`` is not a face record the report can count, or None."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    for key in ("bucket", "blur", "pose", "source", "track"):
        if key not in record:
            return f"no {key!r}"
    if not isinstance(record["bucket"], str):
        return "'bucket' is not text"
    if not _number(record["blur"]):
        return "'blur' is not a number"
    pose = record["pose"]
    if not isinstance(pose, list) or not pose or not all(map(_number, pose)):
        return "'pose' is not a list of angles"
    if not isinstance(record["source"], (str, type(None))) or not isinstance(record["track"], int):
        return "'source' or 'track' has the wrong type"
    return None


def _faces(n: int) -> str:
    return f"{n} face{'s' if n != 1 else ''}"


def faceset_stats(folder: Path) -> str:
    """A text report: faces per bucket, blur and yaw histograms, tracks and sources.

    What the report is there to show is counted, never dropped: a face in a bucket
    swapgraph does not know is listed under its own name, and a face whose blur score or
    yaw is not finite (NaN, infinity) is left out of that histogram; each such finding
    ends the report with a ``warning:`` line. A line that is not a face record at all (not
    an object, a key missing, a value of the wrong type) is refused, UsageError naming the
    line: there is nothing of it to count.
    """
    records = list(read_faceset(folder))
    for number, record in enumerate(records, 1):  # read_faceset gives one record per line
        problem = _record_problem(record)
        if problem is not None:
            raise UsageError(f"{Path(folder) / FACES_FILE}: line {number} is not a face record ({problem}); the "
                             "faceset is damaged, extract it again")
    if not records:
        return f"{folder}: empty faceset (0 faces)"
    buckets = Counter(r["bucket"] for r in records)
    unknown = {b: n for b, n in sorted(buckets.items()) if b not in BUCKETS}
    measured = {"blur": [r["blur"] for r in records], "yaw": [r["pose"][0] for r in records]}
    blur, yaw = ([v for v in values if math.isfinite(v)] for values in measured.values())
    lines = [f"{folder}: {len(records)} faces from {len({r['source'] for r in records})} source(s), "
             f"{len({(r['source'], r['track']) for r in records})} track(s)", "buckets:"]
    lines += [f"  {b:<14} {buckets.get(b, 0):>6}" for b in BUCKETS]
    lines += [f"  {b!r:<14} {n:>6}  (unknown bucket)" for b, n in unknown.items()]
    if blur:
        lo, hi = min(blur), max(blur)
        lines += [f"blur (variance of Laplacian; higher is sharper): median {np.median(blur):.1f}"]
        lines += _histogram(blur, list(np.linspace(lo, hi if hi > lo else lo + 1, 9)))
    else:
        lines += ["blur (variance of Laplacian; higher is sharper): no finite score"]
    lines += ["yaw (degrees):"] + _histogram(yaw, list(range(-90, 91, 15)))
    if unknown:
        lines.append(f"warning: {_faces(sum(unknown.values()))} in a bucket swapgraph does not know "
                     f"({', '.join(map(repr, unknown))}; the buckets are {', '.join(BUCKETS)}): a filter or training "
                     "by bucket leaves them out")
    for what, values in measured.items():
        odd = [v for v in values if not math.isfinite(v)]
        if odd:
            kinds = sorted({"NaN" if math.isnan(v) else "infinity" for v in odd})
            lines.append(f"warning: {_faces(len(odd))} with no finite {what} ({', '.join(kinds)}), left out of the "
                         f"{what} histogram")
    return "\n".join(lines)


def _thumb(image_path: Path, coverage_frac: float) -> np.ndarray:
    img = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise UsageError(f"{image_path}: missing or unreadable crop; the faceset is damaged, extract it again")
    s = img.shape[0]
    pad = int(s * (1 - coverage_frac) / 2)
    return cv2.resize(img[pad:s - pad, pad:s - pad], (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def filter_faceset(folder: Path, out: Path, *, buckets: set[str] | None = None, min_sharpness: float = 0.0,
                   min_change: float = 0.02) -> tuple[int, int]:
    """Copy the faces of ``folder`` that pass into a new faceset ``out``; returns (kept, total).

    Keeps faces in ``buckets`` (all when None) with a blur score of at least
    ``min_sharpness``, and drops near-duplicates: a face whose 16x16 thumbnail differs
    from the last kept face of its track by less than ``min_change`` (mean absolute
    difference, 0..1). ``out`` is written under a temporary name and renamed when done.
    """
    folder, out = Path(folder), Path(out)
    if out.resolve() == folder.resolve():
        raise ArgumentError("out", str(out), "the same folder as the faceset; write the filtered faceset elsewhere")
    problem = replace_problem(out, "folder", inputs=[folder])
    if problem is not None:
        raise ArgumentError("out", str(out), problem)
    with OutputLocks([out]):
        return _filter_into(folder, out, buckets, min_sharpness, min_change)


def _filter_into(folder: Path, out: Path, buckets: set[str] | None, min_sharpness: float,
                 min_change: float) -> tuple[int, int]:
    unknown = (buckets or set()) - set(BUCKETS)
    if unknown:
        raise ArgumentError("bucket", ", ".join(sorted(unknown)), f"unknown; choose from {', '.join(BUCKETS)}")
    info_path = folder / INFO_FILE
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    frac = info.get("coverage", 160) / info.get("crop", 256)
    records = sorted(read_faceset(folder), key=lambda r: (str(r["source"]), r["track"], r["frame"]))
    temp = temp_path_for(out)
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    kept: list[dict[str, Any]] = []
    last: dict[tuple[str, int], np.ndarray] = {}
    try:
        for r in records:
            if buckets and r["bucket"] not in buckets or r["blur"] < min_sharpness:
                continue
            key = (str(r["source"]), r["track"])
            thumb = _thumb(folder / r["file"], frac)
            if key in last and float(np.abs(thumb - last[key]).mean()) < min_change:
                continue
            last[key] = thumb
            shutil.copy2(folder / r["file"], temp / r["file"])
            kept.append(r)
        with (temp / FACES_FILE).open("w", encoding="utf-8") as f:
            for r in kept:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")
        info.update({"faces": len(kept), "buckets": dict(Counter(r["bucket"] for r in kept)),
                     "filtered_from": str(folder), "filter": {"buckets": sorted(buckets) if buckets else None,
                                                              "min_sharpness": min_sharpness, "min_change": min_change}})
        (temp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        write_folder_marker(temp, "faceset", [p.name for p in temp.iterdir()])
        publish(temp, out)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return len(kept), len(records)
