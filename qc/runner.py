"""The QC runner: measure a swapped shot against its plate with a QualityReport graph.

``run_qc`` finds the plate's frames the output was rendered from (its sidecar) and the
identity references (the facesets its model was trained on), builds a small graph
(two Decodes, DetectFaces on each, QualityReport) and runs it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from swapgraph import api
from swapgraph.nodes.faceset import FACES_FILE
from swapgraph.nodes.identity import read_sidecar, references_from_sidecar
from swapgraph.nodes.video.probe import probe_video
from swapgraph.runtime.errors import UsageError
from swapgraph.runtime.provenance import sidecar_path


def qc_paths(output: Path, out_dir: Path | None) -> Path:
    """Where ``swapgraph qc`` writes: ``OUTPUT.qc.json`` beside the output, or in ``out_dir``."""
    name = output.name + ".qc.json"
    return (out_dir / name) if out_dir else output.with_name(name)


def qc_frames_from_sidecar(output: Path) -> str | None:
    """``A-B``, the plate's frames ``output`` was rendered from, from its sidecar; None without one."""
    span = read_sidecar(sidecar_path(output)).get("source_frames")
    if isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) for v in span):
        return f"{span[0]}-{span[1]}"
    return None


def qc_references(output: Path, faceset_a: Path | None, faceset_b: Path | None) -> tuple[Path, Path] | None:
    """The (A, B) facesets for the identity measure: the ones given, else those the output's
    swap model was trained on (from its sidecar); None, said on stderr, when there are none."""
    if (faceset_a is None) != (faceset_b is None):
        raise UsageError("qc: --a and --b go together; give both facesets (the plate's person and the one put on)")
    if faceset_a is not None and faceset_b is not None:
        for flag, folder in (("--a", faceset_a), ("--b", faceset_b)):
            if not (folder / FACES_FILE).is_file():
                raise UsageError(f"qc {flag}: {folder} is not a faceset (no {FACES_FILE}); give a folder written by "
                                 "`swapgraph extract`")
        return faceset_a, faceset_b
    found = references_from_sidecar(read_sidecar(sidecar_path(output)))
    if found is None:
        print(f"qc: identity not measured: no reference facesets in {sidecar_path(output).name} (its Swap model's "
              "model.json); give --a FACESET --b FACESET", file=sys.stderr)
    return found


def run_qc(output: Path, source: Path, out_dir: Path | None = None, workers: int = 0,
           frames: str | None = None, faceset_a: Path | None = None,
           faceset_b: Path | None = None) -> dict[str, Any]:
    """Measure ``output`` against its plate ``source``; writes the report and returns it.

    ``frames`` (``A-B``): the plate's frames the output was rendered from; by default the
    range its sidecar records. ``faceset_a``, ``faceset_b``: references for the identity
    measure; by default the facesets the output's model was trained on, if known.
    """
    a, b = probe_video(output), probe_video(source)  # both readable before anything is said
    frames = frames or qc_frames_from_sidecar(output)
    references = qc_references(output, faceset_a, faceset_b)
    start, end = api.parse_frames(frames) if frames else (0, None)
    plate_frames = len(b.pts[start:None if end is None else end + 1])
    if len(a.pts) != plate_frames or (a.info.width, a.info.height) != (b.info.width, b.info.height):
        raise UsageError(f"qc: {output} ({len(a.pts)} frames, {a.info.width}x{a.info.height}) and {source} "
                         f"({plate_frames} frames{f' in {frames}' if frames else ''}, {b.info.width}x{b.info.height}) "
                         "must have the same frames and size; give the plate the output was made from "
                         "(and --frames A-B if it was a range)")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    report_path = qc_paths(output, out_dir)
    if start > 0:
        # two sources of one graph are paired batch by batch, and the plate's would start
        # DetectFaces' pre-roll early: measure against a lossless copy of the range instead
        import tempfile

        with tempfile.TemporaryDirectory(prefix=".qc-plate-", dir=report_path.parent) as tmp:
            plate = Path(tmp) / "plate.mkv"
            copy = {"version": 1, "name": "qc-plate", "nodes": {
                "plate": {"type": "Decode", "params": {"path": str(source), "frames": frames}},
                "copy": {"type": "Encode", "inputs": {"frames": "plate.frames"},
                         "params": {"path": str(plate), "codec": "ffv1", "audio": "none"}}}}
            api.run(api.load(copy))
            return _run_qc_graph(output, plate, None, report_path, workers, references)
    return _run_qc_graph(output, source, frames, report_path, workers, references)


def _run_qc_graph(output: Path, source: Path, frames: str | None, report_path: Path, workers: int,
                  references: tuple[Path, Path] | None) -> dict[str, Any]:
    report_params: dict[str, Any] = {"path": str(report_path)}
    if references is not None:
        report_params.update(faceset_a=str(references[0]), faceset_b=str(references[1]))
    doc = {"version": 1, "name": "qc", "settings": {"batch_size": 16}, "nodes": {
        "plate": {"type": "Decode", "params": {"path": str(source), "frames": frames}},
        "shot": {"type": "Decode", "params": {"path": str(output)}},
        "faces": {"type": "DetectFaces", "inputs": {"frames": "plate.frames"}, "params": {"workers": workers}},
        "again": {"type": "DetectFaces", "inputs": {"frames": "shot.frames"}, "params": {"workers": workers}},
        "report": {"type": "QualityReport", "inputs": {"frames": "shot.frames", "reference": "plate.frames",
                                                         "faces": "faces.faces", "output_faces": "again.faces"},
                   "params": report_params}}}
    api.run(api.load(doc))
    return json.loads(report_path.read_text())
