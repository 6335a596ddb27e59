"""What a cut says about the clips to swap: selection rules, each selected clip's media,
its source frames in that file, its record frames, and the refusals.

Time: OpenTimelineIO gives a clip's source range in the media's timecode space (an EDL's
source timecodes, a Resolve clip's start at 01:00:00:00) at the cut's rate. A media file's
frame *index* (what Decode reads, 0-based) is that frame less the media's start: the
timecode the file carries, else the start of the reference's available range, else 0.
Record frames count from the start of the cut (its first frame is 0); record timecodes add
the cut's global start time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import opentimelineio as otio

from swapgraph.runtime.errors import ArgumentError, UsageError
from swapgraph.runtime.timecode import format_timecode, parse_timecode

from .formats import METADATA_KEY, file_name_in, media_file_name, media_path, timeline_rate

RULE_KINDS = ("marker", "track", "clip")
VIDEO_SUFFIXES = (".mov", ".mp4", ".mkv", ".mxf", ".avi", ".m4v", ".webm")


@dataclass(frozen=True)
class Rule:
    kind: str
    text: str
    pattern: re.Pattern | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.text}"


def parse_rule(text: str) -> Rule:
    """``marker:NAME_OR_COLOUR``, ``track:NAME_OR_V2`` or ``clip:REGEX``."""
    kind, sep, value = text.partition(":")
    if not sep or kind not in RULE_KINDS or not value:
        raise ArgumentError("select", text, "expected marker:NAME (a marker's name or colour), track:V2 (a video "
                            "track by number, from V1 at the bottom, or by name) or clip:REGEX (a pattern on clip "
                            "names)")
    if kind == "clip":
        try:
            return Rule(kind, value, re.compile(value))
        except re.error as exc:
            raise ArgumentError("select", text, f"not a regular expression ({exc}); fix the pattern") from None
    return Rule(kind, value)


# ---- tracks, as editors name them ---------------------------------------------------------

#: track names adapters make up, not the editor's: the AAF adapter's (AAF object names) and
#: the CMX 3600 adapter's "V" (an EDL names no tracks)
_ADAPTER_TRACK_NAMES = frozenset({"TimelineMobSlot", "Sequence", "ScopeReference", "V"})


def track_name(track: otio.schema.Track) -> str:
    """The name the editor gave a track, or "" when it has none: the track's name, else
    Premiere's (``fcp_xml`` ``@MZ.TrackName``: its FCP7 export leaves ``<name>`` out); for an
    AAF track its slot name; none for the names adapters make up (``_ADAPTER_TRACK_NAMES``:
    AAF's "TimelineMobSlot", "Sequence", "ScopeReference", an EDL's "V")."""
    aaf = track.metadata.get("AAF")
    if isinstance(aaf, Mapping) and "SlotName" in aaf:
        return str(aaf["SlotName"] or "")
    name = track.name or ""
    if name in _ADAPTER_TRACK_NAMES:
        return ""
    fcp = track.metadata.get("fcp_xml")
    if not name and isinstance(fcp, Mapping) and fcp.get("@MZ.TrackName"):
        name = str(fcp["@MZ.TrackName"])
    return name


def _numbered_tracks(timeline: otio.schema.Timeline) -> Iterator[tuple[str, otio.schema.Track]]:
    """Each top-level track with its number as editors say it: V1, V2, ... for video tracks
    and A1, A2, ... for audio, counted from 1 at the bottom (the first in the stack)."""
    for letter, tracks in (("V", timeline.video_tracks()), ("A", timeline.audio_tracks())):
        for i, track in enumerate(tracks):
            yield f"{letter}{i + 1}", track


def track_label(timeline: otio.schema.Timeline, track: otio.schema.Track) -> str:
    """A track as messages show it: ``V2``, or ``V2 "overlay"`` when it has a name."""
    for number, t in _numbered_tracks(timeline):
        if t is track:
            name = track_name(t)
            return f'{number} "{name}"' if name else number
    return f'"{track_name(track)}"' if track_name(track) else "(a nested track)"


def _tracks_named(timeline: otio.schema.Timeline, text: str) -> list[tuple[str, otio.schema.Track]]:
    """The tracks ``track:TEXT`` means: those named TEXT (any case), else the one numbered
    TEXT (``V2``, ``a1``). A name wins: a track named "V2" is V2 whatever its place."""
    numbered = list(_numbered_tracks(timeline))
    named = [(n, t) for n, t in numbered if track_name(t).casefold() == text.casefold()]
    return named or [(n, t) for n, t in numbered if n.casefold() == text.casefold()]


# ---- what plays -------------------------------------------------------------------------

def is_enabled(item: otio.core.Composable) -> bool:
    """Whether the cut shows ``item`` (a clip, gap or track): OpenTimelineIO's ``enabled``,
    and the adapters' own forms where they keep ``enabled`` true: FCP7 / Premiere XML's
    ``<enabled>FALSE</enabled>`` (``fcp_xml`` ``enabled: 'FALSE'``, on clips and tracks). The
    AAF adapter reads a muted clip as ``enabled`` false; a CMX 3600 EDL has no disabled events."""
    if not getattr(item, "enabled", True):
        return False
    fcp = item.metadata.get("fcp_xml") if hasattr(item, "metadata") else None
    return not (isinstance(fcp, Mapping) and str(fcp.get("enabled", "")).strip().upper() == "FALSE")


@dataclass
class CutClip:
    """A clip of a top-level video track, where it sits in the cut."""

    clip: otio.schema.Clip
    track: otio.schema.Track
    track_index: int  # among the cut's video tracks, 0 = the bottom one
    item_index: int  # among the track's children
    record_in: int  # frames from the cut's start, at the cut's rate
    duration: int
    track_label: str = ""  # the track as messages show it (``track_label``): V2, or V2 "name"
    selected_by: list[Rule] = field(default_factory=list)
    marker: otio.schema.Marker | None = None  # the marker a marker rule matched

    @property
    def record_out(self) -> int:  # inclusive
        return self.record_in + self.duration - 1

    def source_start(self, rate: float) -> int:
        """The clip's first source frame as the cut states it: a timecode value at ``rate``."""
        rng = self.clip.source_range or self.clip.available_range()
        return round(rng.start_time.rescaled_to(rate).value)

    @property
    def label(self) -> str:
        track = self.track_label or f"V{self.track_index + 1}"
        return f"clip {self.clip.name!r} (track {track}, record frame {self.record_in})"


def global_start(timeline: otio.schema.Timeline, rate: float) -> int:
    start = timeline.global_start_time
    return 0 if start is None else round(start.rescaled_to(rate).value)


def item_span(track: otio.schema.Track, index: int, rate: float) -> tuple[int, int]:
    """Where a track's child sits in record time: its first frame (from the cut's start)
    and its length, at ``rate``."""
    rng = track.range_of_child_at_index(index)
    return round(rng.start_time.rescaled_to(rate).value), round(rng.duration.rescaled_to(rate).value)


def cut_clips(timeline: otio.schema.Timeline) -> list[CutClip]:
    """Every clip directly on a video track (nested sequences are not entered)."""
    rate = timeline_rate(timeline)
    clips = []
    for ti, track in enumerate(timeline.video_tracks()):
        label = track_label(timeline, track)
        for ii, item in enumerate(track):
            if isinstance(item, otio.schema.Clip):
                clips.append(CutClip(item, track, ti, ii, *item_span(track, ii, rate), track_label=label))
    return clips


# ---- markers ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PlacedMarker:
    """A marker wherever it sits, placed in record time."""

    marker: otio.schema.Marker
    first: int  # record frames from the cut's start, at the cut's rate
    last: int  # inclusive
    video_track: int | None  # the video track it sits on or in (0 = the bottom one); None: an audio track, the timeline
    clip: otio.schema.Clip | None  # the video clip it is on, if any


def _placed(marker: otio.schema.Marker, own_start: otio.opentime.RationalTime, record_start: int,
            rate: float) -> tuple[int, int]:
    """A marker's first and last record frame: its range is in its holder's own time, which
    starts at ``own_start`` and plays from record frame ``record_start``."""
    rng = marker.marked_range
    first = record_start + round((rng.start_time - own_start).rescaled_to(rate).value)
    return first, first + max(1, round(rng.duration.rescaled_to(rate).value)) - 1


def placed_markers(timeline: otio.schema.Timeline) -> list[PlacedMarker]:
    """Every marker of the cut in record time: on the timeline, on each top-level track
    (video or audio), and on each item directly on one (clips, and gaps: Avid puts most
    locators on filler). The timeline's and a track's markers are in record time; an item's
    are in its own time (a clip's source time), placed where that time plays."""
    rate = timeline_rate(timeline)
    zero = otio.opentime.RationalTime(0, rate)
    out = [PlacedMarker(m, *_placed(m, zero, 0, rate), None, None) for m in timeline.tracks.markers]
    tracks = [*enumerate(timeline.video_tracks()), *((None, t) for t in timeline.audio_tracks())]
    for vi, track in tracks:
        out += [PlacedMarker(m, *_placed(m, zero, 0, rate), vi, None) for m in track.markers]
        for ii, item in enumerate(track):
            if not getattr(item, "markers", None):
                continue
            record, _ = item_span(track, ii, rate)
            on_clip = item if vi is not None and isinstance(item, otio.schema.Clip) else None
            out += [PlacedMarker(m, *_placed(m, item.trimmed_range().start_time, record, rate), vi, on_clip)
                    for m in item.markers]
    return out


def _marker_matches(marker: otio.schema.Marker, text: str) -> bool:
    t = text.casefold()
    return marker.name.casefold() == t or str(marker.color).casefold() == t


def _marks(placed: PlacedMarker, clip: CutClip) -> bool:
    """Whether a marker marks a clip: it is on the clip; or it sits over the clip's record
    frames on a gap, a track (video or audio) or the timeline; or on another video clip on
    a track above the clip's. A marker on a clip never marks one above it: a title over a
    marked plate is not selected."""
    if placed.clip is clip.clip:
        return True
    if placed.first > clip.record_out or placed.last < clip.record_in:
        return False
    return placed.clip is None or placed.video_track > clip.track_index


def select_clips(timeline: otio.schema.Timeline, rules: Sequence[Rule], source: Path) -> list[CutClip]:
    """The clips any rule selects, in record order; a rule selecting nothing is one line.
    Clips the cut does not show (``is_enabled``: disabled clips or tracks) are never selected."""
    clips = cut_clips(timeline)
    markers = placed_markers(timeline) if any(r.kind == "marker" for r in rules) else []
    for clip in clips:
        if not is_enabled(clip.clip) or not is_enabled(clip.track):
            continue
        for rule in rules:
            hit = False
            if rule.kind == "track":
                hit = any(t is clip.track for _, t in _tracks_named(timeline, rule.text))
            elif rule.kind == "clip":
                hit = bool(rule.pattern.search(clip.clip.name or ""))
            else:
                matched = [p for p in markers if _marker_matches(p.marker, rule.text) and _marks(p, clip)]
                if matched:
                    hit = True
                    own = [p for p in matched if p.clip is clip.clip]
                    clip.marker = clip.marker or (own or matched)[0].marker
            if hit:
                clip.selected_by.append(rule)
    chosen = [c for c in clips if c.selected_by]
    for rule in rules:
        if not any(rule in c.selected_by for c in chosen):
            raise ArgumentError("select", str(rule), f"selects no clip of {source}{_why_none(timeline, clips, rule)}; "
                                "fix the rule")
    return sorted(chosen, key=lambda c: (c.record_in, c.track_index))


def _why_none(timeline: otio.schema.Timeline, clips: list[CutClip], rule: Rule) -> str:
    """What the cut has for a rule that selects nothing: its names, and why a match did not count."""
    if rule.kind == "track":
        named = _tracks_named(timeline, rule.text)
        video = ", ".join(track_label(timeline, t) for t in timeline.video_tracks()) or "none"
        which = ", ".join(track_label(timeline, t) for _, t in named)
        if named and all(n.startswith("A") for n, _ in named):
            return f" ({which} is an audio track, and swapgraph pulls video clips); its video tracks: {video}"
        if named:
            return f" (track {which} shows no clip: disabled, or holding none); its video tracks: {video}"
        return f"; its video tracks (V1 at the bottom): {video}"
    if rule.kind == "clip":
        seen = list(dict.fromkeys(repr(c.clip.name) for c in clips))
        hidden = [c for c in clips if rule.pattern.search(c.clip.name or "")]
        note = f" ({len(hidden)} matching clip(s) are disabled: the cut does not show them)" if hidden else ""
        return f"{note}; its clip names: {', '.join(seen[:12]) or 'none'}" + (", ..." if len(seen) > 12 else "")
    seen = {}
    for p in placed_markers(timeline):
        seen[p.marker.name or "(unnamed)"] = None
        seen[str(p.marker.color)] = None
    names = list(seen)
    return f"; its marker names or colours: {', '.join(names[:24]) or 'none'}" + (", ..." if len(names) > 24 else "")


# ---- what changes time ----------------------------------------------------------------

#: Effects known to leave time alone (each source frame plays at its record frame), as the
#: adapters read them: ``{metadata namespace: {key: values}}``, values compared in lower case.
#: FCP7 / Premiere XML filters: Basic Motion (scale, position, rotation) and Crop, the
#: colour correction and image control filters (Color Corrector, 3-way, Levels, Desaturate,
#: ...), audio filters, and a Time Remap that ``retime_in_metadata`` found at 100% forward
#: (checked first). Any other effect on a selected clip is refused: it may retime.
TIME_NEUTRAL_EFFECTS: dict[str, dict[str, frozenset[str]]] = {
    "fcp_xml": {"effectid": frozenset({"basic", "crop", "timeremap"}),
                "effectcategory": frozenset({"color correction", "image control"}),
                "mediatype": frozenset({"audio"})},
}
#: metadata keys (lower case, letters only) that state a speed, in any adapter's metadata
_SPEED_KEYS = frozenset({"speed", "speedratio", "playbackspeed", "timescalar", "retime", "timewarp", "timeremap"})


def _mappings(value: Any) -> Iterator[Mapping]:
    """Every mapping in OTIO metadata, parents before children."""
    if isinstance(value, Mapping):
        yield value
        for v in value.values():
            yield from _mappings(v)
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        for v in value:
            yield from _mappings(v)


def _number(value: Any) -> float | None:
    try:
        return float(Fraction(str(value).strip()))
    except (ValueError, ZeroDivisionError):
        return None


def _fcp_parameters(effect: Mapping) -> dict[str, str]:
    """An FCP7 effect's parameters (one ``parameter`` or a list), by id, values as text."""
    params = effect.get("parameter")
    params = [params] if isinstance(params, Mapping) else params if isinstance(params, Sequence) else []
    return {str(p.get("parameterid") or p.get("name") or "").casefold(): str(p.get("value", "")).strip()
            for p in params if isinstance(p, Mapping)}


def retime_in_metadata(metadata: Any) -> str | None:
    """A speed change some adapter's metadata states, in words, or None: an FCP7 Time Remap
    (``effectid: timeremap``) at another speed than 100%, reversed or at a variable speed;
    or any key naming a speed (``speed``, ``SpeedRatio``, ``time_scalar``, ...; an FCP
    parameter ``{parameterid: speed, value: ...}`` too) whose value is not 1 or 100 (a
    ratio or a percentage at normal speed)."""
    for m in _mappings(metadata):
        if str(m.get("effectid", "")).casefold() == "timeremap":
            p = _fcp_parameters(m)
            bits = [f"speed {p['speed']}"] if "speed" in p and _number(p["speed"]) != 100 else []
            bits += ["reversed"] if p.get("reverse", "").upper() == "TRUE" else []
            bits += ["variable speed"] if p.get("variablespeed", "").upper() in ("1", "TRUE") else []
            if bits:
                return f"Time Remap: {', '.join(bits)}"
            continue
        pairs = list(m.items())
        if "value" in m and (m.get("parameterid") or m.get("name")):
            pairs.append((m.get("parameterid") or m.get("name"), m["value"]))
        for key, value in pairs:
            if re.sub(r"[^a-z]", "", str(key).casefold()) in _SPEED_KEYS and not isinstance(value, (Mapping, bool)) \
                    and not (isinstance(value, Sequence) and not isinstance(value, str)) \
                    and _number(value) not in (1, 100):
                return f"{key} {value}"
    return None


def _time_neutral(effect: otio.schema.Effect) -> bool:
    for namespace, keys in TIME_NEUTRAL_EFFECTS.items():
        meta = effect.metadata.get(namespace)
        if isinstance(meta, Mapping) and any(str(meta.get(k, "")).casefold() in v for k, v in keys.items()):
            return True
    return False


def _effect_name(effect: otio.schema.Effect) -> str:
    fcp = effect.metadata.get("fcp_xml")
    effect_id = fcp.get("effectid") if isinstance(fcp, Mapping) else None
    return next((str(n) for n in (effect.name, effect.effect_name, effect_id) if n), "unnamed")


def time_change(effect: otio.schema.Effect) -> tuple[str, str] | None:
    """How an effect changes which media frame plays at which record frame, as the words
    of a refusal and its fix; None when it is known not to. Every adapter's forms: a
    FreezeFrame; a LinearTimeWarp other than 1 (EDL M2, AAF Motion Control, OTIO); a 1.0
    warp with an AAF offset map (Avid's Timewarp and Trim to Fill: the adapter reads a
    keyframed, variable-speed map as 1.0, as in its samples misc_speed_effects.aaf and
    "Trim-to-fill 99 frames into 100 - trimmed"); any other TimeEffect (AAF time warps,
    Video Speed Control); a plain Effect whose metadata states a speed (FCP7 Time Remap);
    and any effect not in ``TIME_NEUTRAL_EFFECTS``."""
    retime = "pull it at 100% and retime the conformed clip in the editor"
    remove = "remove it for the pull and apply it to the conformed clip in the editor"
    if isinstance(effect, otio.schema.FreezeFrame):
        return "has a freeze frame", "render the freeze in the editor after the conform, or remove it"
    if isinstance(effect, otio.schema.LinearTimeWarp):
        if effect.time_scalar < 0:
            return f"is reversed ({-effect.time_scalar * 100:g}% speed)", retime
        if effect.time_scalar != 1:
            return f"is retimed to {effect.time_scalar * 100:g}% speed", retime
        if any("PARAM_OFFSET_MAP_U" in m for m in _mappings(effect.metadata.get("AAF"))):
            return ("has an Avid Timewarp or Trim to Fill (an offset map, which the AAF adapter reads as 100% "
                    "speed)"), retime
        return None
    if isinstance(effect, otio.schema.TimeEffect):
        return f"has a time effect ({_effect_name(effect)})", remove
    speed = retime_in_metadata(effect.metadata)
    if speed is not None:
        said = speed if speed.startswith("Time Remap") else f"{_effect_name(effect)}: {speed}"
        return f"is retimed ({said})", retime
    if _time_neutral(effect):
        return None
    return f"has an effect swapgraph does not know ({_effect_name(effect)}), which may change time", remove


def refuse_unsupported(clip: CutClip, source: Path) -> None:
    """Speed effects, reversed clips, effects not known to leave time alone, and transitions
    over a clip: refused, naming the clip. Their frames are not the media's frames one for
    one, so a pull could not be exact."""
    for effect in clip.clip.effects:
        change = time_change(effect)
        if change is not None:
            what, fix = change
            raise UsageError(f"{source}: {clip.label} {what}; swapgraph pulls clips that play their media frame for "
                             f"frame: {fix}")
    speed = retime_in_metadata({k: v for k, v in clip.clip.metadata.items() if k != METADATA_KEY})
    if speed is not None:
        raise UsageError(f"{source}: {clip.label} is retimed ({speed}); swapgraph pulls clips that play their media "
                         "frame for frame: pull it at 100% and retime the conformed clip in the editor")
    neighbours = [clip.track[i] for i in (clip.item_index - 1, clip.item_index + 1) if 0 <= i < len(clip.track)]
    for item in neighbours:
        if isinstance(item, otio.schema.Transition):
            raise UsageError(f"{source}: {clip.label} has a transition ({item.transition_type or item.name}) over it; "
                             "swapgraph conforms cuts: make it a cut for the pull, and add the transition back on the "
                             "conformed track")


@dataclass
class Media:
    """A media file as the cut uses it."""

    path: Path
    frames: int  # frames in the file
    fps: Fraction
    start: int  # the file's first frame as a timecode value (frames since 00:00:00:00 at its rate)
    timecode: str | None  # the start timecode the file carries
    timecode_from: str  # where ``start`` came from: "file", "reference" or "none"


def resolve_media(clip: CutClip, base: Path, media_root: Path | None, source: Path) -> Path:
    """The media file of a clip: its reference's path (a relative one against ``base``, the
    cut's folder, or ``media_root``); when missing there, or when the cut names no file here
    (an EDL without source-file comments, Avid's ``file://VSD/...``, a Windows path), a file
    in ``media_root`` and ``base`` named by one of ``search_names``, as it is or with a video
    suffix. When none is there, the one line lists every place and name tried."""
    ref = clip.clip.media_reference
    if isinstance(ref, otio.schema.ImageSequenceReference):
        raise UsageError(f"{source}: {clip.label} uses an image sequence; swapgraph pulls video files: export "
                         "the media as a video file (ProRes, DNxHR, FFV1) and relink it")
    if isinstance(ref, otio.schema.GeneratorReference):
        raise UsageError(f"{source}: {clip.label} is a generator ({ref.generator_kind or 'black, bars'}), not media; "
                         "fix the rule so that it selects camera clips")
    path = media_path(ref, media_root or base)
    if path is not None and _is_file(path):
        return path
    roots = list(dict.fromkeys(r for r in (media_root, base) if r is not None))
    names = search_names(clip.clip)
    for root in roots:
        for name in names:
            for candidate in _with_video_suffixes(name):
                if _is_file(root / candidate):
                    return root / candidate
    where = f"{path} is not a file; " if path is not None else ""
    searched = (f"searched {' and '.join(str(r) for r in roots)} for {', '.join(names)} (each as it is, and with "
                f"{'/'.join(VIDEO_SUFFIXES)} in place of or after its suffix)") if names else \
        "the clip has no file, clip or reel name to search for"
    raise UsageError(f"{source}: {clip.label}: media not found: {where}{searched}; fix: pass the folder that holds it "
                     "as the media root (--media-root)")


_EDL_SOURCE_FILE = re.compile(r"^\s*SOURCE FILE:\s*(?P<name>.+?)\s*$", re.IGNORECASE)


def search_names(clip: otio.schema.Clip) -> list[str]:
    """The file names a clip's media is searched by, in this order: its reference's file
    name (whatever host or system its URL or path names), an EDL's ``* SOURCE FILE:``
    comment, Avid's ``UNC Path`` user comment, the clip's name, its reel, its reference's
    name. Each is the last part of a path (``\\`` separators too); one that can name no file
    (a clip named ``/``, an empty reel) is left out."""
    texts: list[str | None] = [media_file_name(clip.media_reference)]
    cmx = clip.metadata.get("cmx_3600")
    comments = cmx.get("comments") if isinstance(cmx, Mapping) else None
    if isinstance(comments, Sequence) and not isinstance(comments, str):
        texts += [m["name"] for m in map(_EDL_SOURCE_FILE.match, map(str, comments)) if m]
    aaf = clip.metadata.get("AAF")
    user = aaf.get("UserComments") if isinstance(aaf, Mapping) else None
    if isinstance(user, Mapping) and user.get("UNC Path"):
        texts.append(str(user["UNC Path"]))
    texts += [clip.name, _reel(clip), getattr(clip.media_reference, "name", None)]
    return list(dict.fromkeys(n for n in map(file_name_in, texts) if n))


def _with_video_suffixes(name: str) -> list[str]:
    """``name``, then with each video suffix in place of its own, then after it."""
    stem, dot, _ = name.rpartition(".")
    swapped = [stem + s for s in VIDEO_SUFFIXES] if dot and stem else []
    return list(dict.fromkeys([name, *swapped, *(name + s for s in VIDEO_SUFFIXES)]))


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for a path the system cannot even look up (too long, NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _reel(clip: otio.schema.Clip) -> str | None:
    for key in ("cmx_3600", "fcp_xml", "AAF"):
        meta = clip.metadata.get(key)
        if isinstance(meta, Mapping) and meta.get("reel"):
            return str(meta["reel"])
    return None


def reel_name(clip: otio.schema.Clip) -> str:
    return _reel(clip) or ""


def media_start(ref: otio.core.MediaReference | None, file_timecode: str | None, fps: Fraction) -> tuple[int, str]:
    """The media's first frame as a timecode value (frames since 00:00:00:00), and where it
    came from: the timecode the file carries, else the reference's available range, else 0."""
    if file_timecode:
        return parse_timecode(file_timecode, fps), "file"
    rng = getattr(ref, "available_range", None)
    if rng is not None:
        return round(rng.start_time.rescaled_to(float(fps)).value), "reference"
    return 0, "none"


def same_rate(a: float, b: float) -> bool:
    """29.97 in an EDL and 30000/1001 in a file are one rate; 24 and 23.976 are not."""
    return abs(a - b) < 0.005


def source_frames(clip: CutClip, media: Media, rate: float) -> tuple[int, int]:
    """The clip's first and last frame as 0-based indexes into its media file."""
    first = clip.source_start(rate) - media.start
    return first, first + clip.duration - 1


def timecode_at(frames: int, rate: float, drop: bool) -> str:
    return format_timecode(frames, Fraction(rate).limit_denominator(1001), drop)

