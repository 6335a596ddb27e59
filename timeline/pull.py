"""``swapgraph pull``: the clips a cut selects, as a pull list and renders.

Each selected clip's source frames (plus handles, clamped to its media) are rendered with
the graph through ``api.render`` (chunks, resume). A media file several clips use is
rendered once per stretch of frames their ranges cover together (overlapping or touching
ranges merge; a gap between them is not rendered). A render carries the timecode of its
first media frame, so an editor relinks it by timecode as it would the camera file, and
a reel of its own (``SG0001``, ...: what a conformed EDL names it by). A selected clip that
higher tracks hide for its whole length is listed, not rendered: the cut never shows it.

Timecodes follow the cut: record timecodes count as the cut does (drop frame or not, as
``cut_drop_frame`` reads it; as its media's timecode when the cut does not say), source
timecodes as the media's own timecode does.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from swapgraph import api
from swapgraph.runtime.errors import ArgumentError, UsageError
from swapgraph.farm.manifests import sha256_file
from swapgraph.runtime.files import can_write, folder_marker, write_folder_marker, write_json_atomic, write_text_atomic
from swapgraph.runtime.provenance import SYNTHETIC_STATEMENT, sidecar_path
from swapgraph.runtime.timecode import is_drop_frame

from .cut import (VIDEO_SUFFIXES, CutClip, Media, cut_clips, global_start, media_start, parse_rule, reel_name,
                  refuse_unsupported, resolve_media, same_rate, select_clips, source_frames, timecode_at)
from .formats import cut_drop_frame, edl_probe_rate, parse_rate, quiet_adapters, read_timeline, timeline_rate

PULL_VERSION = 1
PULL_JSON = "pull.json"
PULL_CSV = "pull.csv"


@dataclass
class Shot:
    """One selected clip: where its frames come from and where they go back."""

    name: str
    clip: str
    track: str
    track_index: int  # among the cut's video tracks, 0 = the bottom one
    item_index: int  # the clip's place among its track's children
    reel: str
    media: str
    selected_by: list[str]
    source: tuple[int, int]  # first and last frame as 0-based indexes into the media file
    source_tc: tuple[str, str]  # the same frames' timecodes (the last frame inclusive)
    handles: tuple[int, int]  # with handles, clamped to the media
    handles_tc: tuple[str, str]
    record: tuple[int, int]  # first and last record frame, counted from the cut's start
    record_tc: tuple[str, str]
    source_start: int  # the clip's source start as the cut states it (a timecode value at the cut's rate)
    render: str = ""  # the render file, relative to the pull folder; "" when hidden
    render_first: int = 0  # the media frame index of the render's frame 0
    hidden_by: str = ""  # the higher tracks that hide the clip for its whole length (then not rendered)


@dataclass
class Render:
    """One render: a stretch of one media file's frames, covering one or more shots."""

    name: str
    media: str
    first: int
    last: int
    file: str  # relative to the pull folder
    media_timecode: str  # the timecode of the media's frame 0 (the render starts at it + first)
    timecode_from: str
    shots: list[str] = field(default_factory=list)
    reel: str = ""  # the render's reel in a conformed EDL (eight characters at most, one per render)

    @property
    def frames(self) -> int:
        return self.last - self.first + 1


@dataclass
class PullResult:
    folder: Path
    rate: float  # the cut's
    drop_frame: bool  # whether the cut's timecode counts drop frame
    shots: list[Shot]
    renders: list[Render]
    plans: list[Any]  # api.RenderPlan, one per render
    pull_json: Path
    pull_csv: Path
    rendered: list[str] = field(default_factory=list)  # renders made by this call
    skipped: list[str] = field(default_factory=list)  # renders already complete


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "shot"


def _shot_name(clip: CutClip) -> str:
    """The marker's name (when it is not the rule's word itself), else the clip's, else the reel."""
    rules = {r.text.casefold() for r in clip.selected_by if r.kind == "marker"}
    if clip.marker is not None and clip.marker.name and clip.marker.name.casefold() not in rules:
        return _file_name(clip.marker.name)
    name = clip.clip.name or ""
    stem = Path(name).stem if Path(name).suffix.lower() in VIDEO_SUFFIXES else name
    return _file_name(stem or reel_name(clip.clip) or "shot")


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 and names.count(n) == 1 else f"{n}_{seen[n]}")
    return out


def render_reel(index: int) -> str:
    """The reel of a pull's ``index``-th render (from 1): ``SG0001``, eight characters at most
    as CMX 3600 wants, one per render, so that an EDL event leads back to its render."""
    return f"SG{index:04d}"


def _read_cut(timeline: Path, rate: float | None, media_root: Path | None):
    """The cut. An EDL states no rate: without ``rate`` it is read at its first media's,
    found by reading it first at a rate at which its timecodes all exist (``edl_probe_rate``:
    29.97 when it counts drop frame, 25 when a frame field reaches 24, ...)."""
    if timeline.suffix.lower() != ".edl" or rate is not None:
        with quiet_adapters():  # pyaaf2 logs about the file's insides on the root logger
            return read_timeline(timeline, rate=rate)
    cut = read_timeline(timeline, rate=edl_probe_rate(timeline))
    for clip in cut_clips(cut):
        try:
            path = resolve_media(clip, timeline.parent, media_root, timeline)
        except UsageError:
            continue  # the selection reports it, if the clip is chosen
        fps = float(api.media_info(path).fps)
        if not same_rate(fps, timeline_rate(cut)):
            cut = read_timeline(timeline, rate=fps)
        break
    return cut


def plan_pull(timeline: Path, *, select: Sequence[str], graph: Path | str, out: Path, handles: int = 0,
              overrides: Sequence[str] = (), media_root: Path | None = None, rate: str | float | None = None,
              plate: str | None = None, node: str | None = None, chunk_size: int | None = None,
              batch_size: int | None = None, device: str | None = None) -> PullResult:
    """Read the cut, select and check its clips, and plan their renders; writes nothing.
    ``rate``: an EDL's, as ``parse_rate`` reads it (``29.97``, ``30000/1001``). Every refusal
    is one line (exit 2) before anything is written."""
    from .conform import covering_tracks  # conform reads what pull writes, so it imports pull

    timeline = Path(timeline).resolve()
    out = Path(out).resolve()
    media_root = Path(media_root).resolve() if media_root else None
    if handles < 0:
        raise ArgumentError("handles", str(handles), "expected 0 or more frames")
    rate = parse_rate(rate) if rate is not None else None
    rules = [parse_rule(r) for r in select]
    if not rules:
        raise ArgumentError("select", "", "give at least one rule: marker:NAME, track:NAME or clip:REGEX")
    cut = _read_cut(timeline, rate, media_root)
    rate_ = timeline_rate(cut)
    chosen = select_clips(cut, rules, timeline)
    media: dict[Path, Media] = {}
    located: list[tuple[CutClip, Media]] = []
    for clip in chosen:
        refuse_unsupported(clip, timeline)
        path = resolve_media(clip, timeline.parent, media_root, timeline).resolve()
        if path not in media:
            info = api.media_info(path)
            start, origin = media_start(clip.clip.media_reference, info.timecode, info.fps)
            media[path] = Media(path, info.frames, info.fps, start, info.timecode, origin)
        m = media[path]
        if not same_rate(float(m.fps), rate_):
            raise UsageError(f"{timeline}: {clip.label}: its media {path.name} runs at {float(m.fps):g} frames/s in a "
                             f"{rate_:g} frames/s cut, a retime; conform the media to the cut's rate first")
        located.append((clip, m))
    said = cut_drop_frame(cut, timeline)
    drop = said if said is not None else any(m.timecode and is_drop_frame(m.timecode) for m in media.values())
    names = _unique([_shot_name(c) for c, _ in located])
    start = global_start(cut, rate_)
    shots = []
    for (clip, m), name in zip(located, names):
        m_drop = is_drop_frame(m.timecode) if m.timecode else drop  # the source's own timecode
        first, last = source_frames(clip, m, rate_)
        if first < 0 or last >= m.frames:
            have = f"{timecode_at(m.start, rate_, m_drop)}-{timecode_at(m.start + m.frames - 1, rate_, m_drop)}"
            raise UsageError(f"{timeline}: {clip.label} uses source {timecode_at(m.start + first, rate_, m_drop)}-"
                             f"{timecode_at(m.start + last, rate_, m_drop)}, but {m.path.name} holds {have} "
                             f"(start timecode from the {m.timecode_from}); relink the clip to its media")
        h_first, h_last = max(0, first - handles), min(m.frames - 1, last + handles)
        tc = lambda i: timecode_at(m.start + i, rate_, m_drop)  # noqa: E731
        shots.append(Shot(
            name=name, clip=clip.clip.name, track=clip.track_label or f"V{clip.track_index + 1}",
            track_index=clip.track_index, item_index=clip.item_index, reel=reel_name(clip.clip), media=str(m.path),
            selected_by=[str(r) for r in clip.selected_by], source=(first, last), source_tc=(tc(first), tc(last)),
            handles=(h_first, h_last), handles_tc=(tc(h_first), tc(h_last)),
            record=(clip.record_in, clip.record_out),
            record_tc=(timecode_at(start + clip.record_in, rate_, drop), timecode_at(start + clip.record_out, rate_, drop)),
            source_start=m.start + first, hidden_by=", ".join(covering_tracks(cut, clip, rate_))))
    shown = [s for s in shots if not s.hidden_by]
    if not shown:
        hidden = "; ".join(f"{s.name} by {s.hidden_by}" for s in shots)
        raise UsageError(f"{timeline}: every clip the rules select is hidden for its whole length by a higher track "
                         f"({hidden}), so the cut shows none of them; select clips the cut shows")
    renders = _group(shown, media, drop)
    spec, sink, suffix, has_timecode = _graph(graph, overrides, plate, node, renders[0].media)
    plate = plate_node(spec, plate)
    plans = []
    for i, r in enumerate(renders, 1):
        r.file, r.reel = f"renders/{r.name}{suffix}", render_reel(i)
        overrides_r = [f"{plate}.path={r.media}"]
        if has_timecode:  # the render starts at its first media frame's timecode
            overrides_r.append(f"{sink}.timecode={r.media_timecode}")
        plans.append(api.plan_render(spec.with_overrides(overrides_r), out / r.file,
                                     frames=(r.first, r.last), node=sink, chunks_dir=out / "chunks" / r.name,
                                     chunk_size=chunk_size or api.DEFAULT_CHUNK_SIZE, batch_size=batch_size,
                                     device=device))
    for s in shown:
        r = next(r for r in renders if s.name in r.shots)
        s.render, s.render_first = r.file, r.first
    return PullResult(out, rate_, drop, shots, renders, plans, out / PULL_JSON, out / PULL_CSV)


def plate_node(spec: api.GraphSpec, plate: str | None) -> str:
    """The Decode node that reads the cut's media: ``plate``, else the graph's only Decode."""
    decodes = spec.nodes_of_type("Decode")
    if plate is not None:
        if plate not in decodes:
            raise ArgumentError("plate", repr(plate), "not a Decode node of the graph; its Decode nodes: "
                                + (", ".join(decodes) or "none"))
        return plate
    if len(decodes) != 1:
        raise ArgumentError("plate", "", f"the graph has {len(decodes)} Decode nodes ({', '.join(decodes) or 'none'}); "
                            "name the one that reads the cut's media")
    return decodes[0]


def _graph(graph: Path | str, overrides: Sequence[str], plate: str | None, node: str | None,
           media: str) -> tuple[api.GraphSpec, str, str, bool]:
    """The graph, checked with the first media as its plate; the sink rendered; its
    output's suffix; whether it writes a start timecode (Encode's ``timecode``)."""
    spec = api.load(graph, list(overrides))
    nid = plate_node(spec, plate)
    g = spec.with_overrides([f"{nid}.path={media}"]).graph()
    sinks = [n for n in g.order if getattr(g.nodes[n].cls, "chunk_param", None)]
    if node is not None:
        if node not in sinks:
            raise ArgumentError("node", repr(node), "not an output a render can join; the graph's: "
                                + (", ".join(sinks) or "none"))
        sinks = [node]
    if len(sinks) != 1:
        raise ArgumentError("node", "", f"the graph has {len(sinks)} outputs a render can join "
                            f"({', '.join(sinks) or 'none'}); name the one to render")
    sink = sinks[0]
    suffix = Path(str(getattr(g.nodes[sink].params, g.nodes[sink].cls.chunk_param))).suffix or ".mov"
    return spec, sink, suffix, "timecode" in type(g.nodes[sink].params).model_fields


def _group(shots: list[Shot], media: dict[Path, Media], drop: bool) -> list[Render]:
    """Each media file's handle ranges merged where they overlap or touch: one render each."""
    renders: list[Render] = []
    stems: dict[str, int] = {}
    for path in sorted(media, key=str):
        m = media[path]
        spans: list[list[Any]] = []
        for s in sorted((s for s in shots if s.media == str(path)), key=lambda s: s.handles):
            if spans and s.handles[0] <= spans[-1][1] + 1:
                spans[-1][1] = max(spans[-1][1], s.handles[1])
                spans[-1][2].append(s.name)
            else:
                spans.append([s.handles[0], s.handles[1], [s.name]])
        stem = _file_name(path.stem)
        stems[stem] = stems.get(stem, 0) + 1
        if stems[stem] > 1:
            stem = f"{stem}_{stems[stem]}"
        tc = m.timecode or timecode_at(m.start, float(m.fps), drop)  # a file without timecode counts as the cut
        for first, last, names in spans:
            renders.append(Render(f"{stem}.{first:06d}-{last:06d}", str(path), first, last, "", tc,
                                  m.timecode_from, names))
    return renders


def complete_render(path: Path, key: str, first: int, last: int) -> dict[str, Any] | None:
    """The sidecar of the render at ``path`` when the file is complete for render key
    ``key`` over media frames ``first``-``last``; else None. A second pull skips such a
    render, and conform takes only such renders."""
    side = sidecar_path(path)
    if not (path.is_file() and side.is_file()):
        return None
    try:
        doc = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    return doc if doc.get("render_key") == key and doc.get("source_frames") == [first, last] else None


def write_pull_list(result: PullResult, *, timeline: Path, graph: Path | str, handles: int,
                    overrides: Sequence[str]) -> None:
    """``pull.json`` (what conform reads) and ``pull.csv`` (for people and spreadsheets)."""
    doc = {
        "version": PULL_VERSION,
        "statement": "renders listed here are synthetic media: " + SYNTHETIC_STATEMENT,
        "timeline": str(timeline), "timeline_sha256": sha256_file(timeline), "rate": result.rate,
        "drop_frame": result.drop_frame,
        "graph": str(graph), "overrides": list(overrides), "handles": handles,
        "shots": [asdict(s) for s in result.shots],
        "renders": [{**asdict(r), "render_key": p.key, "graph_hash": p.graph.hash} for r, p in zip(result.renders, result.plans)],
    }
    write_json_atomic(result.pull_json, doc)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["shot", "clip", "track", "reel", "media", "rate", "source_in_tc", "source_out_tc", "source_in",
                "source_out", "handle_in_tc", "handle_out_tc", "handle_in", "handle_out", "record_in_tc",
                "record_out_tc", "record_in", "record_out", "render", "render_first_frame", "render_reel", "hidden_by"])
    reels = {r.file: r.reel for r in result.renders}
    for s in result.shots:
        w.writerow([s.name, s.clip, s.track, s.reel, s.media, f"{result.rate:g}", *s.source_tc, *s.source, *s.handles_tc,
                    *s.handles, *s.record_tc, *s.record, s.render, s.render_first, reels.get(s.render, ""),
                    s.hidden_by])
    write_text_atomic(result.pull_csv, buf.getvalue())


def pull(timeline: Path, *, select: Sequence[str], graph: Path | str, out: Path, handles: int = 0,
         overrides: Sequence[str] = (), media_root: Path | None = None, rate: str | float | None = None,
         plate: str | None = None, node: str | None = None, plan_only: bool = False, workers: int | None = None,
         scheduler: str | None = None, chunk_size: int | None = None, batch_size: int | None = None,
         device: str | None = None, progress: Callable[[int, int], None] | None = None,
         log: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None) -> PullResult:
    """Plan the pull, write the pull list, and render what is not rendered yet (unless
    ``plan_only``: then a farm manager runs the plans). Renders resume chunk by chunk.
    ``warn`` hears, before any render, of each selected shot that is not rendered because
    higher tracks hide it for its whole length."""
    timeline, out = Path(timeline).resolve(), Path(out).resolve()
    result = plan_pull(timeline, select=select, graph=graph, out=out, handles=handles, overrides=overrides,
                       media_root=media_root, rate=rate, plate=plate, node=node, chunk_size=chunk_size,
                       batch_size=batch_size, device=device)
    if not can_write(out):
        raise ArgumentError("out", str(out), "cannot write there (nor make it); choose a writable folder")
    if out.exists() and (not out.is_dir() or folder_marker(out) is None and any(out.iterdir())):
        raise ArgumentError("out", str(out), f"{out} {'is a file' if not out.is_dir() else 'holds files swapgraph did not write'}; "
                            "give pull a new or empty folder, or the folder an earlier pull wrote")
    for s in result.shots:
        if s.hidden_by and warn is not None:
            warn(f"shot {s.name} ({s.clip!r} on {s.track}) is hidden by {s.hidden_by} for its whole length: not "
                 "rendered, and conform leaves it out")
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        if folder_marker(out) is None:
            write_folder_marker(out, "pull")  # pull.json names what it holds
        (out / "renders").mkdir(exist_ok=True)
        write_pull_list(result, timeline=timeline, graph=graph, handles=handles, overrides=overrides)
    except BaseException:
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise
    if plan_only:
        return result
    total = sum(r.frames for r in result.renders)
    todo = []
    for r, plan in zip(result.renders, result.plans):
        done_already = complete_render(out / r.file, plan.key, r.first, r.last) is not None
        (result.skipped if done_already else todo).append(r.file)
    done = sum(r.frames for r in result.renders if r.file in result.skipped)
    if progress:
        progress(done, total)
    if todo:
        with api.connect_farm(workers, scheduler) as farm:  # the cluster starts once for every render
            for r, plan in zip(result.renders, result.plans):
                if r.file not in todo:
                    continue
                api.render(plan, farm=farm, log=log,
                           progress=(lambda d, t, base=done: progress(base + d, total)) if progress else None)
                result.rendered.append(r.file)
                done += r.frames
    return result
