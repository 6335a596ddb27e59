"""``swapgraph conform``: a copy of the cut with the renders on a new top video track.

The new track, ``swapgraph``, sits above the cut's video tracks. At every record frame
where a pulled clip is what the cut shows (no clip of a higher track covers it), the new
track shows the render's frame of the very source frame the clip showed there: the new
clip keeps the original's source timecodes, and its media (the render) starts at the
timecode of its first media frame. Where a higher track covers a pulled clip, the new
track leaves a gap, so that what covers it still shows. The original tracks are untouched.
A shot the pull found hidden for its whole length has no render and no clip. The new cut
counts timecode as the pulled cut does (drop frame or not) in every format; in an EDL each
render is its reel (``SG0001``), as the pull list maps them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import opentimelineio as otio

from swapgraph.runtime.errors import ArgumentError, UsageError
from swapgraph.runtime.graph.load import parse_json
from swapgraph.runtime.provenance import SYNTHETIC_STATEMENT, sidecar_path

from .cut import CutClip, cut_clips, is_enabled, item_span, track_label
from .formats import FORMATS, METADATA_KEY, cut_drop_frame, quiet_adapters, read_timeline, write_timeline
from .pull import PULL_JSON, PULL_VERSION, complete_render, render_reel

TRACK_NAME = "swapgraph"


@dataclass
class ConformResult:
    out: Path
    clips: int  # clips on the new track
    shots: int
    hidden: list[str]  # shots that a higher track covers entirely, though the pull found them showing
    not_rendered: list[str]  # shots the pull found hidden, and so did not render


#: what conform reads of each entry of a pull list, and the JSON type it must have
_SHOT_KEYS = {"name": str, "clip": str, "track": str, "track_index": int, "item_index": int, "media": str,
              "render": str, "record": list, "source": list, "source_start": int}
_RENDER_KEYS = {"file": str, "render_key": str, "first": int, "last": int, "shots": list}
_KIND_NAMES = {str: "text", int: "an integer", list: "a list"}


def _pull_problem(doc: Any) -> str | None:
    """Why ``doc`` (JSON data) is not a pull list conform can read, or None when it is one."""
    if not isinstance(doc, dict):
        return f"a JSON {type(doc).__name__}, not an object"
    if doc.get("version") != PULL_VERSION:
        return f"'version' is {doc.get('version')!r}, not {PULL_VERSION}"
    rate = doc.get("rate")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
        return "no 'rate' (frames per second)"
    for key, keys in (("shots", _SHOT_KEYS), ("renders", _RENDER_KEYS)):
        entries = doc.get(key)
        if not isinstance(entries, list):
            return f"no {key!r} list"
        for i, entry in enumerate(entries, 1):
            what = f"{key[:-1]} {i}"
            if not isinstance(entry, dict):
                return f"{what} is not an object"
            for name, kind in keys.items():
                value = entry.get(name)
                pair = kind is list and name != "shots"
                if not isinstance(value, kind) or isinstance(value, bool) or (pair and len(value) != 2):
                    return f"{what} has no {name!r} " + ("[first, last]" if pair else f"({_KIND_NAMES[kind]})")
    if not isinstance(doc.get("drop_frame", False), bool):
        return "'drop_frame' is not true or false"
    files = {r["file"] for r in doc["renders"]}
    for i, shot in enumerate(doc["shots"], 1):
        hidden = shot.get("hidden_by", "")
        if not isinstance(hidden, str):
            return f"shot {i}'s 'hidden_by' is not text"
        if shot["render"] not in files and not (hidden and not shot["render"]):
            return f"shot {i}'s render {shot['render']!r} is not among the renders"
    return None


def read_pull(folder: Path) -> dict[str, Any]:
    """The pull list ``pull.json`` that ``swapgraph pull`` wrote in ``folder``, checked:
    UsageError, one line naming the file, when it is missing or not a pull list."""
    path = Path(folder) / PULL_JSON
    if not path.is_file():
        raise UsageError(f"{path}: no pull list; fix: give --pull the folder swapgraph pull wrote (its --out)")
    try:
        doc = parse_json(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a readable pull list (not JSON text); fix: run swapgraph pull again") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable pull list ({str(exc).split(';')[0]}); fix: run swapgraph pull "
                         "again") from None
    problem = _pull_problem(doc)
    if problem is not None:
        raise UsageError(f"{path}: not a pull list of version {PULL_VERSION} ({problem}); fix: run swapgraph pull "
                         "again")
    return doc


def _check_renders(folder: Path, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each render complete: its file and its sidecar there, made with the graph and
    settings of the pull (the render key) over the frames the pull list names."""
    renders = {}
    for r in doc["renders"]:
        path = folder / r["file"]
        meta = complete_render(path, r["render_key"], r["first"], r["last"])
        if meta is None:
            raise UsageError(f"{path}: render of shot {', '.join(r['shots'])} is missing or not the pull's; fix: run "
                             "swapgraph pull again with the same arguments (it renders only what is missing)")
        renders[r["file"]] = {**r, "path": path, "sidecar": sidecar_path(path), "graph_hash": (meta.get("graph") or {}).get("hash")}
    return renders


def _find(clips: list[CutClip], shot: dict[str, Any], rate: float, source: Path) -> CutClip:
    """The shot's clip in the cut, as the pull found it: same place, name, record and source frames."""
    for c in clips:
        if c.track_index == shot["track_index"] and c.item_index == shot["item_index"]:
            if c.clip.name == shot["clip"] and [c.record_in, c.record_out] == list(shot["record"]) \
                    and c.source_start(rate) == shot["source_start"]:
                return c
            break
    raise UsageError(f"{source}: shot {shot['name']}: clip {shot['clip']!r} is no longer at record frames "
                     f"{shot['record'][0]}-{shot['record'][1]} of track {shot['track']} with the frames pulled; the "
                     "cut changed since the pull: fix: pull it again")


def _covered(cut: otio.schema.Timeline, rate: float, above: int) -> list[tuple[int, int]]:
    """Record ranges (inclusive) that enabled items of enabled video tracks above track
    ``above`` fill: what the cut shows there instead (all taken as opaque). Enabled as
    ``is_enabled`` reads it: a clip Premiere disables covers nothing."""
    spans = []
    for ti, track in enumerate(cut.video_tracks()):
        if ti <= above or not is_enabled(track):
            continue
        for ii, item in enumerate(track):
            if isinstance(item, (otio.schema.Gap, otio.schema.Transition)) or not is_enabled(item):
                continue
            first, length = item_span(track, ii, rate)
            spans.append((first, first + length - 1))
    return spans


def covering_tracks(cut: otio.schema.Timeline, clip: CutClip, rate: float) -> list[str]:
    """The video tracks above ``clip`` that hide it for its whole length, as messages name
    them (``V2 "titles"``, bottom first); none when the cut shows any frame of it."""
    if visible(clip.record_in, clip.record_out, _covered(cut, rate, clip.track_index)):
        return []
    labels = []
    for ti, track in enumerate(cut.video_tracks()):
        if ti <= clip.track_index or not is_enabled(track):
            continue
        for ii, item in enumerate(track):
            if isinstance(item, (otio.schema.Gap, otio.schema.Transition)) or not is_enabled(item):
                continue
            first, length = item_span(track, ii, rate)
            if first <= clip.record_out and first + length - 1 >= clip.record_in:
                labels.append(track_label(cut, track))
                break
    return labels


def visible(first: int, last: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``first..last`` less the covered spans, as inclusive ranges in order."""
    parts = [(first, last)]
    for a, b in covered:
        nxt = []
        for x, y in parts:
            if b < x or a > y:
                nxt.append((x, y))
                continue
            if x < a:
                nxt.append((x, a - 1))
            if b < y:
                nxt.append((b + 1, y))
        parts = nxt
    return parts


def swap_track(cut: otio.schema.Timeline, doc: dict[str, Any], renders: dict[str, dict[str, Any]],
               source: Path) -> tuple[otio.schema.Track, list[str], list[str]]:
    """The ``swapgraph`` track: a clip per visible stretch of each pulled clip, gaps between;
    the shots hidden now, and those the pull found hidden (and did not render)."""
    rate = doc["rate"]
    clips = cut_clips(cut)
    reels = {r["file"]: r.get("reel") or render_reel(i) for i, r in enumerate(doc["renders"], 1)}
    pieces = []
    hidden, not_rendered = [], []
    for shot in doc["shots"]:
        clip = _find(clips, shot, rate, source)
        parts = visible(clip.record_in, clip.record_out, _covered(cut, rate, clip.track_index))
        if shot.get("hidden_by") and not shot["render"]:
            if parts:
                raise UsageError(f"{source}: shot {shot['name']} was hidden by {shot['hidden_by']} at the pull, so "
                                 "not rendered, and the cut now shows it; the cut changed since the pull: fix: pull "
                                 "it again")
            not_rendered.append(shot["name"])
            continue
        render = renders[shot["render"]]
        media_zero = shot["source_start"] - shot["source"][0]  # the media's first frame as a timecode value
        if not parts:
            hidden.append(shot["name"])
        for a, b in parts:
            available = otio.opentime.TimeRange(otio.opentime.RationalTime(media_zero + render["first"], rate),
                                                otio.opentime.RationalTime(render["last"] - render["first"] + 1, rate))
            ref = otio.schema.ExternalReference(target_url=Path(render["path"]).resolve().as_uri(),
                                                available_range=available)
            ref.name = Path(render["path"]).name
            new = otio.schema.Clip(
                name=f"{shot['name']}_swapgraph", media_reference=ref,
                source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(shot["source_start"] + a - clip.record_in, rate),
                                                     otio.opentime.RationalTime(b - a + 1, rate)))
            new.metadata[METADATA_KEY] = {
                "synthetic_media": True, "statement": SYNTHETIC_STATEMENT, "shot": shot["name"],
                "graph_hash": render["graph_hash"], "sidecar": str(Path(render["sidecar"]).resolve()),
                "source_clip": shot["clip"], "source_media": shot["media"], "source_track": shot["track"],
            }
            new.metadata["cmx_3600"] = {"reel": reels[shot["render"]]}  # the render's, not the camera's
            pieces.append((a, b, new))
    pieces.sort(key=lambda p: p[0])
    track = otio.schema.Track(name=TRACK_NAME, kind=otio.schema.TrackKind.Video)
    at = 0
    for a, b, new in pieces:
        if a > at:
            track.append(otio.schema.Gap(duration=otio.opentime.RationalTime(a - at, rate)))
        track.append(new)
        at = b + 1
    return track, hidden, not_rendered


def _rebase(cut: otio.schema.Timeline, old: Path, new: Path) -> None:
    """Relative media paths of the copy made relative to its own folder, so that a cut
    written elsewhere still finds its media (the only change to the original tracks)."""
    if old == new:
        return
    for clip in cut.find_clips():
        ref = clip.media_reference
        url = getattr(ref, "target_url", None)
        if isinstance(ref, otio.schema.ExternalReference) and url and "://" not in url and not Path(url).is_absolute():
            ref.target_url = os.path.relpath(old / url, new)


def conform(timeline: Path, *, pull_dir: Path, out: Path, edl_style: str = "avid") -> ConformResult:
    """Write a copy of the cut in ``out``'s format with the renders on a ``swapgraph`` track.

    An EDL holds one video track: ``.edl`` gets the ``swapgraph`` track alone (a VFX return
    EDL, laid over the cut in the editor); the other formats get the whole cut with it.
    """
    timeline, pull_dir, out = Path(timeline).resolve(), Path(pull_dir).resolve(), Path(out).resolve()
    if out == timeline:
        raise ArgumentError("out", str(out), "is the cut itself, which conform leaves untouched; give a new name")
    if out.suffix.lower() not in FORMATS:
        raise ArgumentError("out", str(out), f"unknown timeline format {out.suffix or '(no suffix)'}; use one of "
                            + ", ".join(sorted(FORMATS)))
    doc = read_pull(pull_dir)
    with quiet_adapters():  # pyaaf2 logs about the file's insides on the root logger
        cut = read_timeline(timeline, rate=doc["rate"])
    drop = doc["drop_frame"] if "drop_frame" in doc else cut_drop_frame(cut, timeline)
    renders = _check_renders(pull_dir, doc)
    track, hidden, not_rendered = swap_track(cut, doc, renders, timeline)
    if out.suffix.lower() == ".edl":
        new = otio.schema.Timeline(name=f"{cut.name or timeline.stem} {TRACK_NAME}",
                                   global_start_time=cut.global_start_time)
        new.tracks.append(track)
    else:
        new = cut.deepcopy()
        _rebase(new, timeline.parent, out.parent)
        new.name = f"{cut.name or timeline.stem} {TRACK_NAME}"
        children = list(new.tracks)
        last_video = max(i for i, t in enumerate(children)
                         if isinstance(t, otio.schema.Track) and t.kind == otio.schema.TrackKind.Video)
        new.tracks.insert(last_video + 1, track)
    new.metadata[METADATA_KEY] = {"synthetic_media": True, "statement": SYNTHETIC_STATEMENT,
                                 "pull": str(pull_dir / PULL_JSON), "source_timeline": str(timeline),
                                 "graph": doc.get("graph")}
    write_timeline(new, out, edl_style=edl_style, drop_frame=drop)
    return ConformResult(out, sum(isinstance(i, otio.schema.Clip) for i in track), len(doc["shots"]), hidden,
                         not_rendered)
