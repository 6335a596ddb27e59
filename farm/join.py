"""Joining a render's chunks: the manifests checked, then the sink's own join.

The farm knows no file format: the sink type named in the manifests joins its chunks
(``Sink.join_chunks``; Encode copies packets without re-encoding and adds the source
audio), writing the output whole or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swapgraph.runtime.errors import ArgumentError, MediaError, UsageError
from swapgraph.runtime.files import FOLDER_MARKER, OutputLocks, can_write, folder_marker, replace_problem
from swapgraph.runtime.provenance import sidecar_path
from swapgraph.runtime.node import Sink
from swapgraph.runtime.registry import default_registry

from .manifests import manifest_files, read_chunk_manifests, read_manifest
from .plan import RenderPlan


def join_chunks(folder: Path, out: Path, *, expect: RenderPlan | None = None) -> dict[str, Any]:
    """Join the chunks whose manifests are in ``folder`` into ``out``; ``expect``: the plan
    they must be exactly (a render checks that no stale chunk slipped in)."""
    out = Path(out).resolve()
    found = read_chunk_manifests(folder)
    docs = [d for _, d in found]
    if expect is not None:
        want = [[c.first, c.last] for c in expect.chunks]
        have = [d["frames"] for d in docs]
        if have != want or docs[0]["render_key"] != expect.key:
            raise MediaError(f"{folder}: the chunks there ({len(have)}) are not the plan's ({len(want)}); "
                             "rerun the render")
    types = {d["node_type"] for d in docs}
    if len(types) != 1:
        raise UsageError(f"{folder}: chunks of different node types ({', '.join(sorted(types))}); delete the stale "
                         "chunks and rerun them")
    cls = default_registry().get(types.pop())
    if not (issubclass(cls, Sink) and cls.chunk_param is not None):
        raise UsageError(f"{folder}: the chunks were written by {cls.type_name()}, which cannot join chunks")
    if not can_write(out.parent):
        raise ArgumentError("out", str(out), "cannot write there (nor make its folder); choose a writable folder")
    chunk_files = [f for path, doc in found for f in (path, *manifest_files(path, doc))]
    problem = replace_problem(out, "file", inputs=[Path(folder), *chunk_files])
    if problem is not None:
        raise ArgumentError("out", str(out), problem)
    chunks = [{**doc, "files": [str(f) for f in manifest_files(path, doc)],
               "sha256": [f["sha256"] for f in doc["files"]]} for path, doc in found]
    with OutputLocks([out]):
        result = cls.join_chunks(chunks, out)
    result["chunks"] = len(docs)
    return result


def clean_chunks(folder: Path) -> int:
    """Delete what a render wrote in its chunks folder: the files its manifests name, their
    sidecars, the manifests and the folder's marker; the folder itself only when nothing
    else is left in it. Returns the files deleted. Nothing a manifest does not name goes."""
    folder = Path(folder)
    if not folder.is_dir() or folder_marker(folder) is None:
        return 0
    deleted = 0
    for manifest in sorted(folder.glob("chunk-*.manifest.json")):
        doc = read_manifest(manifest)
        if doc is None:
            continue
        for path in (*manifest_files(manifest, doc), *map(sidecar_path, manifest_files(manifest, doc)), manifest):
            if path.is_file() and path.parent == folder:
                path.unlink()
                deleted += 1
    if {p.name for p in folder.iterdir()} <= {FOLDER_MARKER}:
        (folder / FOLDER_MARKER).unlink(missing_ok=True)
        folder.rmdir()
    return deleted
