"""Joining an Encode's chunks: their packets copied into one file (no re-encode), the
source audio for the whole range added, the frame count checked, the sidecar written."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from swapgraph.runtime.errors import ArgumentError, MediaError
from swapgraph.runtime.files import publish, temp_path_for, write_json_atomic
from swapgraph.runtime.ports import Audio
from swapgraph.runtime.provenance import sidecar_document, sidecar_path

from .audio import AudioMuxer
from .encode import container_format, disk_errors, open_output
from .probe import probe_video


def join_video_chunks(chunks: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    """``chunks``: the manifests of contiguous chunks in frame order (see ``Sink.join_chunks``)."""
    out = Path(out).resolve()
    records = [c["record"] for c in chunks]
    suffix = records[0]["suffix"]
    if container_format(Path("x" + suffix)) != container_format(out):
        raise ArgumentError("out", out.name, f"the chunks are {suffix} files; give the output a {suffix} name")
    out.parent.mkdir(parents=True, exist_ok=True)
    source = Path(records[0]["source"])
    index = probe_video(source)
    shot_first, shot_end = records[0]["first_pts"], records[-1]["end_pts"]
    tb = Fraction(records[0]["time_base"])
    expected = sum(r["frame_count"] for r in records)
    if expected != chunks[-1]["frames"][1] - chunks[0]["frames"][0] + 1:
        raise MediaError(f"{out.name}: the chunks hold {expected} frames for frames {chunks[0]['frames'][0]}-"
                         f"{chunks[-1]['frames'][1]}; rerun the chunks whose manifests disagree")
    temp = temp_path_for(out)
    container = None
    try:
        container = open_output(temp, out)
        with disk_errors(out):
            with av.open(chunks[0]["files"][0]) as first:
                vstream = container.add_stream_from_template(first.streams.video[0])
            timecode = records[0]["timecode"]  # the first chunk starts the joined file
            if timecode is not None:
                # a .mov/.mp4 timecode track counts at the stream's rate, which the template lacks
                vstream.codec_context.framerate = index.info.fps
                vstream.metadata["timecode"] = timecode
            seconds = lambda pts: float((pts - index.info.start_pts) * tb)  # noqa: E731
            audio = AudioMuxer(container, out, Audio(source, list(index.audio), seconds(shot_first), seconds(shot_end)),
                               mode=records[0]["audio"], bitrate=records[0]["audio_bitrate"])
            last_dts = None
            for chunk, record in zip(chunks, records):
                chunk_file = chunk["files"][0]
                with av.open(chunk_file) as c:  # where the chunk's own video starts
                    starts = [p.pts for p in c.demux(c.streams.video[0]) if p.size and p.pts is not None]
                with av.open(chunk_file) as c:
                    vs = c.streams.video[0]
                    # the chunk's frames go where they are in the shot, in the chunk stream's units
                    shift = int(round((record["first_pts"] - shot_first) * tb / vs.time_base)) - min(starts)
                    for packet in c.demux(vs):
                        if packet.size == 0 or packet.pts is None:
                            continue
                        packet.pts += shift
                        if packet.dts is not None:
                            dts = packet.dts + shift
                            if last_dts is not None and dts <= last_dts:
                                dts = min(last_dts + 1, packet.pts)  # keep decode order rising
                            packet.dts = last_dts = dts
                        packet.stream = vstream
                        container.mux(packet)
                audio.pump(float((record["end_pts"] - shot_first) * tb))
            audio.close()
            container.close()
        with av.open(str(temp)) as check:
            counted = sum(1 for p in check.demux(check.streams.video[0]) if p.size)
        if counted != expected:
            raise MediaError(f"{out}: the joined file has {counted} frames, the chunks {expected}; nothing was "
                             "written; rerun the render")
        head = chunks[0]
        summary = {"frames": expected, "render_key": head["render_key"], "params": head.get("params"),
                   "node_devices": head.get("devices"), "preroll": head.get("preroll"),
                   "batch_size": head.get("batch_size"),
                   "chunks": [{"frames": c["frames"], "files": [Path(f).name for f in c["files"]], "sha256": c["sha256"], "host": c.get("host"),
                               "seconds": c.get("seconds")} for c in chunks]}
        extra = {"source": str(source), "source_frames": [head["frames"][0], chunks[-1]["frames"][1]],
                 "frames_written": counted, "codec": records[0]["codec"], "audio": audio.modes_used,
                 "timecode": timecode, "joined_from": str(Path(chunks[0]["files"][0]).parent)}
        graph = head.get("graph")
        sidecar = sidecar_document(out, summary, graph_hash=head["graph_hash"],
                                   graph_name=Path(graph).stem if graph else "graph",
                                   graph_path=Path(graph) if graph else None, node_id=head["node"], extra=extra)
        with disk_errors(out):
            write_json_atomic(sidecar_path(out), sidecar)
            publish(temp, out)
    except BaseException:
        if container is not None:
            try:
                container.close()
            except Exception:  # already closed, or the disk is full: the file goes anyway
                pass
        temp.unlink(missing_ok=True)
        raise
    return {"frames": counted, "output": str(out), "audio": audio.modes_used}
