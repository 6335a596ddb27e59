"""Chunk manifests: what a chunk made, from which graph, with the hashes of its files.

A manifest is written after its chunk's run committed, so it is the chunk's receipt: a
render skips a chunk whose manifest has the render's key and range and whose files are
intact, and ``join`` reads nothing but manifests and the files they name.
"""

from __future__ import annotations

import hashlib
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from swapgraph.runtime.errors import UsageError
from swapgraph.runtime.files import write_json_atomic
from swapgraph.runtime.graph.load import parse_json
from swapgraph.runtime.graph.model import Graph

MANIFEST_VERSION = 2


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(path: Path, graph: Graph, node: str, record: dict[str, Any], summary: dict[str, Any], *,
                   key: str, render_frames: tuple[int, int | None] | None = None, run_id: str = "") -> dict[str, Any]:
    """The receipt of a committed chunk: the sink's ``chunk_record`` (its frames, its files,
    what its join needs), the files' hashes, and the run's provenance."""
    folder = path.parent.resolve()
    files = []
    for f in record.pop("files"):
        f = Path(f)
        files.append({"name": f.name if f.parent.resolve() == folder else str(f), "sha256": sha256_file(f)})
    doc = {
        "swapgraph_chunk": MANIFEST_VERSION,
        "render_key": key,
        "graph_hash": graph.hash,
        "graph": str(graph.path) if graph.path else None,
        "node": node,
        "node_type": graph.nodes[node].cls.type_name(),
        "frames": list(record["frames"]),
        # the whole render's frames, so join can tell a missing first or last chunk
        "render_frames": list(render_frames) if render_frames else None,
        "files": files,
        "record": record,
        "params": summary.get("params", {}),
        "devices": summary.get("node_devices", {}),
        "stats": summary.get("stats", {}),
        "preroll": summary.get("preroll", 0),
        "batch_size": summary.get("batch_size"),
        "seconds": summary.get("seconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, doc)
    return doc


def _is_frame_pair(value: Any, open_end: bool = False) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and \
        (isinstance(value[1], int) or (open_end and value[1] is None))


def manifest_problem(doc: Any) -> str | None:
    """Why ``doc`` (JSON data) is not a chunk manifest of this version, or None when it is one."""
    if not isinstance(doc, dict):
        return f"a JSON {type(doc).__name__}, not an object"
    if doc.get("swapgraph_chunk") != MANIFEST_VERSION:
        return f"'swapgraph_chunk' is {doc.get('swapgraph_chunk')!r}, not {MANIFEST_VERSION}"
    for key in ("render_key", "graph_hash", "node", "node_type"):
        if not isinstance(doc.get(key), str):
            return f"no {key!r} text"
    if not _is_frame_pair(doc.get("frames")):
        return "'frames' is not [first, last]"
    if doc.get("render_frames") is not None and not _is_frame_pair(doc["render_frames"], open_end=True):
        return "'render_frames' is not [first, last]"
    files = doc.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str)
                                              and isinstance(f.get("sha256"), str) for f in files):
        return "'files' is not a list of {name, sha256}"
    if not isinstance(doc.get("record"), dict):
        return "no 'record' object"
    return None


def _load_manifest(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the manifest, None), or (None, why the file is not one)."""
    try:
        doc = parse_json(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except UnicodeDecodeError:
        return None, "not JSON text"
    except ValueError as exc:  # JSONProblem: its first clause says what is wrong
        return None, str(exc).split(";")[0]
    problem = manifest_problem(doc)
    return (None, problem) if problem else (doc, None)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The chunk manifest at ``path``; None when there is none, or the file is not one."""
    return _load_manifest(path)[0]


def manifest_files(path: Path, doc: dict[str, Any]) -> list[Path]:
    """The files a manifest names, absolute (names are relative to the manifest's folder)."""
    return [Path(f["name"]) if Path(f["name"]).is_absolute() else Path(path).parent / f["name"] for f in doc["files"]]


def chunk_is_done(path: Path, key: str, first: int, last: int) -> bool:
    """A chunk is done when its manifest has this render's key and range, and its files are
    there with the hashes the manifest recorded."""
    doc = read_manifest(path)
    if doc is None or doc.get("render_key") != key or doc.get("frames") != [first, last]:
        return False
    return all(f.is_file() and sha256_file(f) == rec["sha256"]
               for f, rec in zip(manifest_files(path, doc), doc["files"]))


def read_chunk_manifests(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The chunk manifests of a folder, checked: one render key, contiguous frames, files intact."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such chunks folder; give the folder the render plan names (OUT.chunks)")
    found = []
    for path in sorted(folder.glob("chunk-*.manifest.json")):
        doc, problem = _load_manifest(path)
        if doc is None:
            raise UsageError(f"{path}: not a chunk manifest of this swapgraph ({problem}); fix: remove it, or rerun "
                             "that chunk")
        found.append((path, doc))
    if not found:
        raise UsageError(f"{folder}: no chunk manifests (chunk-*.manifest.json); run the chunks first")
    found.sort(key=lambda pd: pd[1]["frames"][0])
    keys = {d["render_key"] for _, d in found}
    if len(keys) > 1:
        raise UsageError(f"{folder}: chunks from {len(keys)} different graphs or settings (render keys "
                         f"{', '.join(sorted(k[:12] for k in keys))}); delete the stale chunks and rerun them")
    wholes = {tuple(d["render_frames"]) for _, d in found if d.get("render_frames")}
    if len(wholes) > 1:
        raise UsageError(f"{folder}: chunks of different renders (frames " + ", ".join(f"{a}-{b}" for a, b in
                         sorted(wholes)) + "); delete the stale chunks and rerun them")
    if wholes:
        (a, b), = wholes
        if found[0][1]["frames"][0] != a or (b is not None and found[-1][1]["frames"][1] != b):
            raise UsageError(f"{folder}: the chunks cover frames {found[0][1]['frames'][0]}-"
                             f"{found[-1][1]['frames'][1]} of the render's {a}-{b}; run the missing chunks")
    for (pa, a), (pb, b) in zip(found, found[1:]):
        if b["frames"][0] != a["frames"][1] + 1:
            what = "overlap" if b["frames"][0] <= a["frames"][1] else "leave a gap"
            raise UsageError(f"{pb}: frames {b['frames'][0]}-{b['frames'][1]} {what} after {pa.name} "
                             f"({a['frames'][0]}-{a['frames'][1]}); run the missing chunks or remove the extra one")
    for path, doc in found:
        for f, rec in zip(manifest_files(path, doc), doc["files"]):
            if not f.is_file():
                raise UsageError(f"{f}: chunk file missing; rerun that chunk (its manifest is {path.name})")
            if sha256_file(f) != rec["sha256"]:
                raise UsageError(f"{f}: does not match the hash in {path.name} (changed or damaged); rerun that "
                                 "chunk")
    return found
