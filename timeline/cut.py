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
from typing import Iterable, Mapping, Sequence

import opentimelineio as otio

from swapgraph.runtime.errors import ArgumentError, UsageError
from swapgraph.runtime.timecode import format_timecode, is_drop_frame, parse_timecode

from .formats import edl_drop_frame, media_path, timeline_rate

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
    """``marker:NAME_OR_COLOUR``, ``track:NAME`` or ``clip:REGEX``."""
    kind, sep, value = text.partition(":")
    if not sep or kind not in RULE_KINDS or not value:
        raise ArgumentError("select", text, "expected marker:NAME (a marker's name or colour), track:NAME or "
                            "clip:REGEX (a pattern on clip names)")
    if kind == "clip":
        try:
            return Rule(kind, value, re.compile(value))
        except re.error as exc:
            raise ArgumentError("select", text, f"not a regular expression ({exc}); fix the pattern") from None
    return Rule(kind, value)


@dataclass
class CutClip:
    """A clip of a top-level video track, where it sits in the cut."""

    clip: otio.schema.Clip
    track: otio.schema.Track
    track_index: int  # among the cut's video tracks, 0 = the bottom one
    item_index: int  # among the track's children
    record_in: int  # frames from the cut's start, at the cut's rate
    duration: int
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
        return f"clip {self.clip.name!r} (track {self.track.name or self.track_index + 1}, record frame {self.record_in})"


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
        for ii, item in enumerate(track):
            if isinstance(item, otio.schema.Clip):
                clips.append(CutClip(item, track, ti, ii, *item_span(track, ii, rate)))
    return clips


def _marker_matches(marker: otio.schema.Marker, text: str) -> bool:
    t = text.casefold()
    return marker.name.casefold() == t or str(marker.color).casefold() == t


def _overlaps(marker: otio.schema.Marker, first: int, last: int, rate: float) -> bool:
    start = round(marker.marked_range.start_time.rescaled_to(rate).value)
    end = start + max(1, round(marker.marked_range.duration.rescaled_to(rate).value)) - 1
    return start <= last and end >= first


def select_clips(timeline: otio.schema.Timeline, rules: Sequence[Rule], source: Path) -> list[CutClip]:
    """The clips any rule selects, in record order; a rule selecting nothing is one line."""
    rate = timeline_rate(timeline)
    clips = cut_clips(timeline)
    outer = list(timeline.tracks.markers)  # the cut's markers, in record time
    for clip in clips:
        if not clip.clip.enabled or not clip.track.enabled:
            continue
        for rule in rules:
            hit = False
            if rule.kind == "track":
                hit = (clip.track.name or "").casefold() == rule.text.casefold()
            elif rule.kind == "clip":
                hit = bool(rule.pattern.search(clip.clip.name or ""))
            else:
                own = [m for m in clip.clip.markers if _marker_matches(m, rule.text)]
                around = [m for m in [*clip.track.markers, *outer] if _marker_matches(m, rule.text)
                          and _overlaps(m, clip.record_in, clip.record_out, rate)]
                if own or around:
                    hit = True
                    clip.marker = clip.marker or (own or around)[0]
            if hit:
                clip.selected_by.append(rule)
    chosen = [c for c in clips if c.selected_by]
    for rule in rules:
        if not any(rule in c.selected_by for c in chosen):
            names = {"marker": "marker names or colours", "track": "video track names", "clip": "clip names"}[rule.kind]
            found = _known(timeline, clips, rule.kind)
            raise ArgumentError("select", str(rule), f"selects no clip of {source}; its {names}: "
                                f"{', '.join(found[:12]) or 'none'}; fix the rule")
    return sorted(chosen, key=lambda c: (c.record_in, c.track_index))


def _known(timeline: otio.schema.Timeline, clips: list[CutClip], kind: str) -> list[str]:
    seen: dict[str, None] = {}
    if kind == "track":
        for i, t in enumerate(timeline.video_tracks()):
            seen[t.name or f"(unnamed {i + 1})"] = None
    elif kind == "clip":
        for c in clips:
            seen[repr(c.clip.name)] = None
    else:
        markers = [*timeline.tracks.markers, *(m for t in timeline.video_tracks() for m in t.markers),
                   *(m for c in clips for m in c.clip.markers)]
        for m in markers:
            seen[m.name or "(unnamed)"] = None
            seen[str(m.color)] = None
    return list(seen)


def refuse_unsupported(clip: CutClip, source: Path) -> None:
    """Speed effects, reversed clips and transitions over a clip: refused, naming the clip.
    Their frames are not the media's frames one for one, so a pull could not be exact."""
    for effect in clip.clip.effects:
        if isinstance(effect, otio.schema.FreezeFrame):
            raise UsageError(f"{source}: {clip.label} has a freeze frame; swapgraph pulls clips that play their media "
                             "frame for frame: render the freeze in the editor after the conform, or remove it")
        if isinstance(effect, otio.schema.LinearTimeWarp) and effect.time_scalar != 1:
            what = "is reversed" if effect.time_scalar < 0 else f"is retimed to {effect.time_scalar * 100:g}% speed"
            raise UsageError(f"{source}: {clip.label} {what}; swapgraph pulls clips that play their media frame for "
                             "frame: pull it at 100% and retime the conformed clip in the editor")
        if isinstance(effect, otio.schema.TimeEffect):
            raise UsageError(f"{source}: {clip.label} has a time effect ({effect.effect_name or effect.name}); "
                             "remove it before the pull and apply it to the conformed clip")
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
    cut's folder, or ``media_root``); when missing there, or when the cut names no file (an
    EDL without source-file comments), a file in ``media_root`` (else ``base``) named by the
    clip's file name, its name or its reel."""
    ref = clip.clip.media_reference
    if isinstance(ref, otio.schema.ImageSequenceReference):
        raise UsageError(f"{source}: {clip.label} uses an image sequence; swapgraph pulls video files: export "
                         "the media as a video file (ProRes, DNxHR, FFV1) and relink it")
    if isinstance(ref, otio.schema.GeneratorReference):
        raise UsageError(f"{source}: {clip.label} is a generator ({ref.generator_kind or 'black, bars'}), not media; "
                         "fix the rule so that it selects camera clips")
    tried: list[Path] = []
    path = media_path(ref, media_root or base) if isinstance(ref, otio.schema.ExternalReference) else None
    if path is not None:
        tried.append(path)
        if path.is_file():
            return path
    roots = [r for r in (media_root, base) if r is not None]
    names: list[str] = []
    if path is not None:
        names.append(path.name)
    reel = _reel(clip.clip)
    for name in (clip.clip.name, reel, getattr(ref, "name", None)):
        if name and name not in names:
            names.append(name)
    for root in roots:
        for name in names:
            candidate = root / name
            tried.append(candidate)
            if candidate.is_file():
                return candidate
            for suffix in VIDEO_SUFFIXES:
                other = candidate.with_name(candidate.name + suffix) if not candidate.suffix else candidate.with_suffix(suffix)
                if other.is_file():
                    return other
    where = tried[0] if tried else (roots[0] / (names[0] if names else "?"))
    raise UsageError(f"{source}: {clip.label}: media {where} not found; fix: pass the folder that holds it as the "
                     "media root (--media-root), searched by file name, clip name and reel")


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


def is_drop(source: Path, media: Iterable[Media]) -> bool:
    """Whether the cut counts drop-frame timecode: its media's timecode does, or the EDL
    says so (OpenTimelineIO keeps the frame counts, not the style)."""
    if any(m.timecode and is_drop_frame(m.timecode) for m in media):
        return True
    return source.suffix.lower() == ".edl" and edl_drop_frame(source)
