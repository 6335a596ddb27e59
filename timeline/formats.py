"""Timeline files in and out: OpenTimelineIO (.otio), CMX 3600 EDL (.edl), FCP7 / Premiere XML
(.xml) and Avid AAF (.aaf), through OpenTimelineIO's adapters, chosen by the file's suffix.

Every format is read into the same shape: a Timeline whose ``global_start_time`` is the cut's
first record timecode (at the cut's rate), whose tracks start at that time and hold clips,
gaps and transitions, and whose clips give their source range in the media's own timecode
and their media as an ExternalReference (``media_path`` turns it into a file). What survives
a write and a read back, as ``tests/timeline/test_formats.py`` measures it (exact frames):

- ``.otio``: everything: tracks and their names, clips, gaps, record and source ranges,
  media URLs and available ranges, markers, every metadata namespace, any rate. At 29.97
  and 59.94 how timecode counts rides in the timeline's ``swapgraph`` metadata
  (``drop_frame``), which OpenTimelineIO has no field for.
- ``.xml`` (FCP7 xmeml, which Premiere and Resolve read too): video and audio tracks, clips
  (clips without media too), gaps, record and source ranges, the global start time, media
  as file URLs with their available range, clip markers. The adapter writes no track name,
  so a ``<name>`` goes into each ``<track>`` (its reader takes it from there). Clip metadata
  other than the adapter's ``fcp_xml`` is lost, except swapgraph's (``metadata["swapgraph"]``),
  which rides as JSON in the clip item's ``<comments><clipcommenta>`` and is taken out again
  on reading. At 29.97 and 59.94 the sequence's timecode is shown DF or NDF as the cut
  counts (``write_timeline``'s ``drop_frame``), and so is each file's unless it says how; a
  clip without a source range is written playing its media's whole range.
- ``.aaf``: tracks, video track names (audio tracks come back named "Sequence"), clips
  (clips without media too), gaps, record and source ranges, the global start time, media
  as file URLs (NetworkLocators) with their available range. Markers are lost (the adapter
  writes none); clip metadata other than ``AAF`` is lost, except swapgraph's, which rides as
  JSON in the master mob's user comment ``swapgraph``. Every clip needs an available range
  there: where its media lacks one, the clip's source range stands in. A clip without an
  AAF MobID gets a new one of its own. Transitions are written only with the AAF effect
  metadata a cut read from AAF carries (others are refused). Every timecode (the
  sequence's, each tape's) is flagged drop frame or not as the cut counts (the adapter
  flags the sequence non-drop and tapes drop at any fractional rate: the flags are set in
  the written file); media ranges at another rate are counted at the cut's (the
  writer takes one edit rate), and clips or gaps at another rate are refused.
- ``.edl``: one video track, no audio; clips with their record and source ranges (record
  timecodes include the global start time), media paths (``* FROM CLIP:`` in the 'avid'
  style, ``* OTIO REFERENCE FROM:`` in 'premiere'), clip markers (``* LOC:``). Lost: track
  names (the track reads back as "V"), metadata but reels, the global start time as such
  (it comes back as the first record timecode), and the rate: an EDL holds none, so it is
  read at the rate the caller gives. The 'avid' style keeps clip names (``* FROM CLIP
  NAME:``); 'premiere' names each clip after its media file. A reel (``cmx_3600`` metadata,
  else the media file's stem: letters and digits, eight at most) is written per event;
  'premiere' writes AX; a ``* SOURCE FILE:`` line names each event's media file. At 29.97
  and 59.94 an EDL counts as the cut does: ``FCM: DROP FRAME`` and ``;`` timecodes, or
  ``FCM: NON-DROP FRAME`` and ``:`` (frames exact either way); on reading, an ``FCM: DROP FRAME`` EDL
  written with ``:`` (as Avid does) is read as drop frame too. Tracks of an EDL read start
  at the earliest track's first record timecode, later ones with a leading gap.
"""

from __future__ import annotations

import collections.abc
import contextlib
import copy
import json
import logging
import math
import os
import re
import urllib.parse
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import opentimelineio as otio
from otio_cmx3600_adapter.cmx_3600 import VALID_EDL_STYLES

from swapgraph import api
from swapgraph.runtime.errors import ArgumentError, SwapgraphError, UsageError
from swapgraph.runtime.files import atomic_path
from swapgraph.runtime.timecode import parse_timecode

#: timeline file suffix (lower case) -> OpenTimelineIO adapter name
FORMATS: dict[str, str] = {".otio": "otio_json", ".edl": "cmx_3600", ".xml": "fcp_xml", ".aaf": "AAF"}
_KIND = {".otio": "OpenTimelineIO", ".edl": "CMX 3600 EDL", ".xml": "FCP7 XML", ".aaf": "AAF"}
#: the rate an EDL is read at when the caller names none
EDL_DEFAULT_RATE = 24.0
#: where swapgraph keeps its own clip metadata, in every format that can carry it
METADATA_KEY = "swapgraph"
_AAF_COMMENT = "swapgraph"  # the master mob's user comment holding METADATA_KEY as JSON
_EDL_TIMECODE = re.compile(r"\b(\d\d:\d\d:\d\d)[:;](\d\d)\b")
#: a drive-letter or UNC path, as Avid and Premiere on Windows write them
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")
#: an EDL event line (number, reel, channels, transition [duration], source in/out, record in)
_EDL_EVENT = re.compile(r"^\d+\s+(?P<reel>\S+)\s+\S+\s+\S+(?:\s+\d+)?\s+(?P<src_in>\d\d:\d\d:\d\d[:;]\d\d)\s+"
                        r"\d\d:\d\d:\d\d[:;]\d\d\s+(?P<rec_in>\d\d:\d\d:\d\d[:;]\d\d)")
#: an EDL M2 (motion effect) line: reel, speed in frames/s, source in
_EDL_M2 = re.compile(r"^M2\s+(?P<reel>\S+)\s+(?P<speed>-?\d+(?:\.\d*)?)\s+(?P<tc>\d\d:\d\d:\d\d[:;]\d\d)")


def _suffix(path: Path) -> str:
    """The format's suffix; unknown ones are a usage error listing the known."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"{path}: unknown timeline format {path.suffix or '(no suffix)'!r}; "
                         f"name the file with one of {', '.join(FORMATS)}")
    return suffix


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """An adapter's message, cut to one short line for a one-line error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---- media ------------------------------------------------------------------------------

def media_path(reference: otio.core.MediaReference | None, base: Path) -> Path | None:
    """The file an ExternalReference points at: a ``file://`` URL (percent-decoded; an empty
    host or ``localhost``), or a plain path, a relative one resolved against ``base`` (the
    timeline's folder). None for other references, no URL, a URL naming another host or
    scheme (Avid's ``file://VSD/...``, ``file://C:/...``), or a Windows path (``C:\\...``,
    ``\\\\server\\...``, ``file:///C:/...``) read on another system: no local file to open, so
    callers look for the file by its name (``media_file_name``)."""
    if not isinstance(reference, otio.schema.ExternalReference) or not reference.target_url:
        return None
    url = reference.target_url
    if _WINDOWS_PATH.match(url):
        return Path(url) if os.name == "nt" else None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return None
        path_text = urllib.parse.unquote(parts.path)
        if _WINDOWS_PATH.match(path_text[1:]):  # file:///C:/... (Premiere: file://localhost/D%3a/...)
            return Path(path_text[1:]) if os.name == "nt" else None
        path = Path(path_text)
    elif parts.scheme:  # http:, s3:, ...
        return None
    else:
        path = Path(url)
    return path if path.is_absolute() else Path(base) / path


def media_file_name(reference: otio.core.MediaReference | None) -> str | None:
    """The file name an ExternalReference's URL or path ends in, whatever its host or system
    (``file://VSD/x.mxf``, ``file:///C:/Media/x.mov``, ``C:\\Media\\x.mov`` all give ``x.mxf``
    or ``x.mov``), percent-decoded; None without one."""
    if not isinstance(reference, otio.schema.ExternalReference) or not reference.target_url:
        return None
    url = reference.target_url
    if not _WINDOWS_PATH.match(url) and urllib.parse.urlsplit(url).scheme:
        url = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    return file_name_in(url)


def file_name_in(text: str | None) -> str | None:
    """The last part of a path in either system's separators, when it can name a file here:
    not empty, ``.`` or ``..``, without NUL, at most 255 bytes. None otherwise (a clip named
    ``/`` names no file)."""
    name = re.split(r"[\\/]", text or "")[-1].strip()
    if name in ("", ".", "..") or "\0" in name or len(name.encode("utf-8", "surrogateescape")) > 255:
        return None
    return name


def _file_url(reference: otio.core.MediaReference, base: Path) -> None:
    """Make an ExternalReference's plain or relative path an absolute file URL: XML's
    pathurl is a URL, and AAF's reader turns a plain locator into ``file://`` + path."""
    path = media_path(reference, base)
    if path is not None:
        reference.target_url = path.absolute().as_uri()


def _plain_path(reference: otio.core.MediaReference, base: Path) -> None:
    """Make a file URL a plain path: what EDL readers (and people) expect in a comment, and
    what the 'premiere' style's clip names are cut from."""
    path = media_path(reference, base)
    if path is not None:
        reference.target_url = str(path)


# ---- reading -----------------------------------------------------------------------------

def read_timeline(path: Path, *, rate: float | None = None) -> otio.schema.Timeline:
    """The timeline in ``path``, its format by suffix. An EDL holds no rate: ``rate`` is the
    rate to read it at (the cut's; ``EDL_DEFAULT_RATE``, 24, when None); other formats carry
    their own and ignore it. A file of several sequences (FCP XML can hold them) is refused:
    which one is the cut is the editor's call. Problems are one-line ``UsageError``s."""
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such timeline file; check the path" if not path.exists()
                         else f"{path}: not a file; give the timeline file itself")
    edl_rate = float(rate) if rate is not None else EDL_DEFAULT_RATE
    try:
        with quiet_adapters():
            if suffix == ".edl":
                text = _edl_drop_frame_separators(_read_text(path))
                result = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=edl_rate)
                _edl_motion_effects(text, result, edl_rate)
            else:
                result = otio.adapters.read_from_file(str(path), adapter_name=FORMATS[suffix])
    except Exception as exc:  # adapters raise anything on a file they cannot parse
        raise UsageError(f"{path}: cannot read this {_KIND[suffix]} file ({_first_line(exc)}); "
                         f"{_read_hint(exc, suffix, edl_rate)}") from exc
    timeline = _only_timeline(result, path)
    _RESTORE.get(suffix, lambda t: None)(timeline)
    return timeline


def _read_hint(exc: BaseException, suffix: str, edl_rate: float) -> str:
    """What to do about a cut an adapter could not read, by what it tripped over."""
    text = str(exc)
    if suffix != ".edl":
        return f"check it is an {_KIND[suffix]} file, or export it again"
    if "transaction_id" in text or "transition" in text.lower():
        return ("its transitions do not match its events (a dissolve whose event numbers or clips disagree): export "
                "the EDL again, or export the cut as .otio, .xml or .aaf")
    if "rate" in text.lower() or "frames" in text.lower() or "timecode" in text.lower():
        return f"it was read at {edl_rate:g} fps: pass the cut's rate (--rate), or export the EDL again"
    return "export the EDL again, or export the cut as .otio, .xml or .aaf"


def _read_text(path: Path) -> str:
    """An EDL's text: UTF-8, else Latin-1 (older systems write their own code page)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _fcm_drop(line: str) -> bool | None:
    """An EDL line's frame-count mode: True for ``FCM: DROP FRAME``, False for non-drop,
    None when the line is no FCM line."""
    stripped = line.strip().upper()
    return ("DROP" in stripped and "NON" not in stripped) if stripped.startswith("FCM") else None


def edl_drop_frame(path: Path) -> bool:
    """Whether an EDL counts drop-frame timecode: an ``FCM: DROP FRAME`` line, or event
    timecodes with ';' before the frames (OpenTimelineIO keeps frame counts, not the style)."""
    try:
        text = _read_text(Path(path))
    except OSError:
        return False
    return any(_fcm_drop(line) for line in text.splitlines()) or bool(re.search(r"\d\d:\d\d:\d\d;\d\d", text))


def _edl_drop_frame_separators(text: str) -> str:
    """Timecodes of events under ``FCM: DROP FRAME`` written with ';' before the frames:
    Avid writes drop frame with colons and says so only in the FCM line, while the adapter
    ignores FCM and reads a colon as non-drop (108000 frames at 01:00:00:00, not 107892)."""
    lines, drop = [], False
    for line in text.splitlines():
        stripped = line.strip().upper()
        fcm = _fcm_drop(line)
        if fcm is not None:
            drop = fcm
        elif drop and stripped[:1].isdigit():
            line = _EDL_TIMECODE.sub(r"\1;\2", line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _edl_motion_effects(text: str, timeline: otio.schema.Timeline, rate: float) -> None:
    """The M2 speed effects the adapter drops: it keeps an M2 only where the event's source
    and record lengths differ, so a reverse at 100% (``M2 A001 -025.0 ...``) or a speed
    change whose source out was written at 1:1 would read as a plain clip. Each M2 gives
    its event's clip (same reel, source in and record in), when the adapter gave it no
    time effect, the one the adapter would: a FreezeFrame at speed 0, else a
    LinearTimeWarp of speed / rate. Runs on the adapter's tracks, before ``_restore_edl``."""
    frames = lambda tc: otio.opentime.from_timecode(tc, rate).to_frames()  # noqa: E731
    motions: dict[tuple[str, int, int], float] = {}
    event = None
    for line in text.splitlines():
        line = line.strip()
        found = _EDL_EVENT.match(line)
        if found is not None:
            event = found
        m2 = _EDL_M2.match(line)
        if m2 is not None and event is not None and m2["reel"] == event["reel"]:
            motions[(m2["reel"], frames(m2["tc"]), frames(event["rec_in"]))] = float(m2["speed"])
    if not motions:
        return
    for track in timeline.tracks:
        offset = track.source_range.start_time if track.source_range is not None else None
        for clip in track.find_clips(shallow_search=True):
            if clip.source_range is None or any(isinstance(e, otio.schema.TimeEffect) for e in clip.effects):
                continue
            record = clip.range_in_parent().start_time - (offset or otio.opentime.RationalTime(0, rate))
            key = (str(clip.metadata.get("cmx_3600", {}).get("reel") or "AX"),
                   round(clip.source_range.start_time.rescaled_to(rate).value), round(record.rescaled_to(rate).value))
            speed = motions.get(key)
            if speed == 0:
                clip.effects.append(otio.schema.FreezeFrame())
            elif speed is not None and abs(speed - rate) > 0.05:
                clip.effects.append(otio.schema.LinearTimeWarp(time_scalar=speed / rate))


def _only_timeline(result: otio.core.SerializableObject, path: Path) -> otio.schema.Timeline:
    if isinstance(result, otio.schema.Timeline):
        return result
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
        if len(timelines) == 1:
            return timelines[0]
        if not timelines:
            raise UsageError(f"{path}: holds no sequence; export the cut itself")
        names = ", ".join(repr(t.name) for t in timelines[:5]) + (", ..." if len(timelines) > 5 else "")
        raise UsageError(f"{path}: holds {len(timelines)} sequences ({names}); export the cut alone")
    raise UsageError(f"{path}: holds a {result.schema_name()}, not a timeline; export the cut itself")


def _restore_edl(timeline: otio.schema.Timeline) -> None:
    """The adapter places an EDL's first record timecode as a negative start of each track's
    source range; here it becomes the global start time (the earliest track's) and a
    leading gap on later tracks, as in every other format, so a clip's place in its track
    counts from the cut's start."""
    rate = None
    starts = []
    for track in timeline.tracks:
        start = None
        if track.source_range is not None:
            rate = track.source_range.start_time.rate
            start = otio.opentime.RationalTime(0, rate) - track.source_range.start_time
        starts.append(start)
    if rate is None:
        clip = next(iter(timeline.find_clips()), None)
        rate = clip.source_range.start_time.rate if clip is not None else EDL_DEFAULT_RATE
    zero = otio.opentime.RationalTime(0, rate)
    first = min((s if s is not None else zero for s in starts), default=zero)
    timeline.global_start_time = first
    for track, start in zip(timeline.tracks, starts):
        track.source_range = None
        lead = (start if start is not None else zero) - first
        if lead.value > 0:
            track.insert(0, otio.schema.Gap(source_range=otio.opentime.TimeRange(zero, lead)))


def _restore_xml(timeline: otio.schema.Timeline) -> None:
    """Take back what ``_prepare_xml`` stowed: swapgraph's clip metadata from the clip
    item's comment, and drop the track name's copy in the ``fcp_xml`` metadata."""
    for track in timeline.tracks:
        track.metadata.get("fcp_xml", {}).pop("name", None)
    for clip in timeline.find_clips():
        comments = clip.metadata.get("fcp_xml", {}).get("comments")
        if not hasattr(comments, "get"):  # a plain <comments> text
            continue
        stowed = _stowed(comments.get("clipcommenta"))
        if stowed is not None:
            clip.metadata[METADATA_KEY] = stowed
            del comments["clipcommenta"]
            if not len(comments):
                del clip.metadata["fcp_xml"]["comments"]


def _restore_aaf(timeline: otio.schema.Timeline) -> None:
    """Take back swapgraph's clip metadata from the master mob's user comment."""
    for clip in timeline.find_clips():
        comments = clip.metadata.get("AAF", {}).get("UserComments", {})
        stowed = _stowed(comments.get(_AAF_COMMENT)) if hasattr(comments, "get") else None
        if stowed is not None:
            clip.metadata[METADATA_KEY] = stowed


def _stow(metadata: object) -> str:
    return json.dumps({METADATA_KEY: _plain(metadata)}, sort_keys=True)


def _stowed(text: object) -> object | None:
    """swapgraph's metadata from text ``_stow`` wrote, else None (someone else's comment)."""
    if not isinstance(text, str) or not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data.get(METADATA_KEY) if isinstance(data, dict) and set(data) == {METADATA_KEY} else None


def _plain(value: object) -> object:
    """OTIO's metadata containers as plain dicts and lists, for JSON."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, collections.abc.Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


_RESTORE: dict[str, Callable[[otio.schema.Timeline], None]] = {
    ".edl": _restore_edl, ".xml": _restore_xml, ".aaf": _restore_aaf}


# ---- writing -----------------------------------------------------------------------------

#: the rates timecode counts, as people write them (each NTSC one is N/1001 exactly)
TIMECODE_RATES = "23.976, 24, 25, 29.97, 30, 47.952, 48, 50, 59.94, 60"


def parse_rate(value: str | float | Fraction) -> float:
    """A cut's frame rate as people write it, as the float OpenTimelineIO counts with: an
    integer (``25``), a fraction (``30000/1001``) or a decimal (``29.97``, ``23.976``,
    ``59.94``, ``47.952``, ``23.98``). A decimal within 0.005 of an NTSC rate N/1001 is that
    rate exactly (29.97 is 30000/1001, which timecode counts; 29.97 itself it does not).
    ArgumentError ``rate`` for anything else, and for a rate timecode does not count (12.5)."""
    text = str(value).strip()
    try:
        if isinstance(value, bool):
            raise TypeError(text)
        if isinstance(value, str):
            num, slash, den = text.partition("/")
            exact = Fraction(int(num), int(den)) if slash else Fraction(text)
        else:
            exact = Fraction(value)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        exact = Fraction(0)
    if exact > 0 and exact.denominator != 1:
        ntsc = Fraction(round(exact * Fraction(1001, 1000)) * 1000, 1001)
        if abs(exact - ntsc) < Fraction(1, 200):
            exact = ntsc
    try:
        rate = float(exact)
    except OverflowError:  # 1e999
        rate = 0.0
    if not (rate > 0 and otio.opentime.RationalTime.is_valid_timecode_rate(rate)):
        raise ArgumentError("rate", text, f"expected a frame rate that timecode counts: {TIMECODE_RATES}, or a "
                            "fraction such as 30000/1001")
    return rate


def timeline_rate(timeline: otio.schema.Timeline) -> float:
    """A cut's rate: its global start time's, else its first clip's (24 with neither)."""
    if timeline.global_start_time is not None:
        return timeline.global_start_time.rate
    for clip in timeline.find_clips():
        if clip.source_range is not None:
            return clip.source_range.start_time.rate
    return EDL_DEFAULT_RATE


def timeline_drop_frame(timeline: otio.schema.Timeline) -> bool | None:
    """How a timeline says its timecode counts: swapgraph's ``drop_frame`` (what
    ``write_timeline`` puts in .otio), else an FCP7 XML sequence's displayformat (DF or
    NDF); None when it says nothing."""
    own = timeline.metadata.get(METADATA_KEY)
    if hasattr(own, "get") and isinstance(own.get("drop_frame"), bool):
        return own["drop_frame"]
    fcp = timeline.metadata.get("fcp_xml")
    timecode = fcp.get("timecode") if hasattr(fcp, "get") else None
    shown = str(timecode.get("displayformat") or "").upper() if hasattr(timecode, "get") else ""
    return {"DF": True, "NDF": False}.get(shown)


def cut_drop_frame(timeline: otio.schema.Timeline, path: Path) -> bool | None:
    """Whether the cut read from ``path`` counts drop-frame timecode, as the cut says it:
    an EDL's first FCM line (else ';' in its timecodes), an AAF's sequence timecode (the AAF
    reader drops the flag, so the file is asked), an FCP7 XML sequence's displayformat, or
    swapgraph's metadata in .otio. None when it says nothing; False at a rate without drop
    frame (only 29.97 and 59.94 have it)."""
    if not _is_drop_frame_rate(timeline_rate(timeline)):
        return False
    suffix = Path(path).suffix.lower()
    said = _edl_statement(Path(path)) if suffix == ".edl" else _aaf_drop_frame(Path(path)) if suffix == ".aaf" else None
    return said if said is not None else timeline_drop_frame(timeline)


def _edl_statement(path: Path) -> bool | None:
    """An EDL's frame-count mode: its first FCM line's, else drop frame when a timecode has
    ';' before the frames; None when it says neither."""
    try:
        text = _read_text(path)
    except OSError:
        return None
    for line in text.splitlines():
        fcm = _fcm_drop(line)
        if fcm is not None:
            return fcm
    return True if re.search(r"\d\d:\d\d:\d\d;\d\d", text) else None


def _aaf_drop_frame(path: Path) -> bool | None:
    """The drop flag of an AAF's sequence timecode (its top-level mob's primary timecode
    slot), or None when it has none or cannot be read."""
    import aaf2

    try:
        with quiet_adapters(), aaf2.open(str(path)) as f:
            for mob in f.content.toplevel():
                for slot in mob.slots:
                    segment = slot.segment
                    if isinstance(segment, aaf2.components.Sequence):
                        segment = next(iter(segment.components), None)
                    if isinstance(segment, aaf2.components.Timecode) and slot["PhysicalTrackNumber"].value == 1:
                        return bool(segment.drop)
    except Exception:  # pyaaf2 raises anything on a file it cannot parse; reading it reports that
        return None
    return None


def edl_probe_rate(path: Path) -> float:
    """A rate at which every timecode of an EDL exists, to read it before its media's rate
    is known: 29.97 when it counts drop frame, else the lowest of 24, 25, 30, 60 above its
    highest frame field (a 25 fps EDL has frame 24, which 24 fps lacks)."""
    if edl_drop_frame(path):
        return 30000 / 1001
    try:
        frames = [int(m[2]) for m in _EDL_TIMECODE.finditer(_read_text(Path(path)))]
    except OSError:
        frames = []
    return next((float(r) for r in (24, 25, 30, 60) if max(frames, default=0) < r), 60.0)


class _LastResort(logging.Handler):
    """Shows what Python would show with no handler (its last resort: the message on stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.lastResort is not None and record.levelno >= logging.lastResort.level:
            logging.lastResort.handle(record)


class _NotFromAdapters(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not ({"aaf2", "otio_aaf_adapter"} & set(Path(record.pathname).parts))


@contextlib.contextmanager
def quiet_adapters() -> Iterator[None]:
    """Keep the AAF libraries' logging off the terminal while they run: pyaaf2 logs on the
    root logger (``WARNING:root:Fraction(0,0) not mathematically plausible``, mini-stream
    sizes) about the file's inner structure, and the AAF writer about metadata it skips;
    nothing a user can act on, and what the format loses swapgraph says itself. Every other
    record goes where it went before (a handler is lent to the root logger only when it has
    none, so that ``logging.warning`` installs no stderr handler for good)."""
    root = logging.getLogger()
    lent = None
    if not root.handlers:
        lent = _LastResort()
        root.addHandler(lent)
    handlers, drop = list(root.handlers), _NotFromAdapters()
    for handler in handlers:
        handler.addFilter(drop)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(drop)
        if lent is not None:
            root.removeHandler(lent)


def write_timeline(timeline: otio.schema.Timeline, path: Path, *, edl_style: str = "avid",
                   drop_frame: bool | None = None) -> None:
    """Write ``timeline`` to ``path`` in the format its suffix names, whole or not at all (a
    temporary name beside it, renamed when complete). What a format needs is done to a copy,
    never to ``timeline``. An EDL holds one video track: pass a timeline with exactly one;
    ``edl_style`` is the adapter's style ('avid': ``* FROM CLIP:`` lines and reels;
    'premiere': AX reels, clips named after their files). ``drop_frame``: how timecode
    counts at 29.97 and 59.94, in every format (the cut's, as ``cut_drop_frame`` reads it);
    None: as the timeline says (``timeline_drop_frame``), else drop frame. What a format
    cannot hold is a one-line ``UsageError`` saying what and what to do, and then nothing is
    written."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix == ".edl":
        if edl_style not in VALID_EDL_STYLES:
            raise UsageError(f"{path}: no EDL style {edl_style!r}; choose one of "
                             + ", ".join(map(repr, VALID_EDL_STYLES)))
        video = timeline.video_tracks()
        if len(video) != 1:
            names = ", ".join(repr(t.name) for t in video)
            raise UsageError(f"{path}: an EDL holds one video track, this timeline has {len(video)}"
                             + (f" ({names})" if names else "") + "; write one track to the EDL")
    if not path.parent.is_dir():
        raise UsageError(f"{path}: folder {path.parent} does not exist; create it first")
    _refuse_unwritable(timeline, path, suffix)
    drop = _drop_to_write(timeline, drop_frame)
    work = copy.deepcopy(timeline)
    base = path.parent.absolute()
    try:
        with quiet_adapters(), atomic_path(path) as temp:
            if suffix == ".edl":
                temp.write_text(_edl_text(work, path, base, edl_style, drop), encoding="utf-8")
            elif suffix == ".xml":
                _prepare_xml(work, base, drop)
                otio.adapters.write_to_file(work, str(temp), adapter_name="fcp_xml")
            elif suffix == ".aaf":
                _prepare_aaf(work, base, path)
                otio.adapters.write_to_file(work, str(temp), adapter_name="AAF", use_empty_mob_ids=True)
                _aaf_mark_drop_frame(temp, drop)
            else:
                if _is_drop_frame_rate(timeline_rate(work)):
                    work.metadata.setdefault(METADATA_KEY, {})["drop_frame"] = drop
                otio.adapters.write_to_file(work, str(temp), adapter_name="otio_json")
    except SwapgraphError:
        raise
    except Exception as exc:  # an adapter refusing what the timeline holds, in a way not checked above
        raise UsageError(f"{path}: cannot write this timeline as {_KIND[suffix]} ({_first_line(exc)}); "
                         "write another format (.otio keeps everything)") from exc


def _drop_to_write(timeline: otio.schema.Timeline, drop_frame: bool | None) -> bool:
    if not _is_drop_frame_rate(timeline_rate(timeline)):
        return False
    if drop_frame is not None:
        return bool(drop_frame)
    said = timeline_drop_frame(timeline)
    return True if said is None else said


def _refuse_unwritable(timeline: otio.schema.Timeline, path: Path, suffix: str) -> None:
    """What the adapters fail on with a message about their insides (an IndexError, a
    ``NoneType`` without ``start_time``, a list of rate checks), refused first, in the cut's
    terms: a clip stating neither its source range nor its media's (EDL, XML and AAF place
    a clip by its source frames), an EDL of no clip, an AAF item counted at another rate."""
    if suffix == ".otio":
        return
    kind = _KIND[suffix]
    for clip in timeline.find_clips():
        if clip.source_range is None and getattr(clip.media_reference, "available_range", None) is None:
            raise UsageError(f"{path}: clip {clip.name!r} states neither its source range nor its media's, and "
                             f"{kind} places every clip by its source frames; set the clip's in and out in the cut, "
                             "or write .otio")
    if suffix == ".edl":
        track = timeline.video_tracks()[0]
        if not any(isinstance(item, otio.schema.Clip) and item.enabled for item in track):
            raise UsageError(f"{path}: video track {track.name or 'V1'!r} holds no clip, and an EDL is a list of "
                             "clips (events); write .otio, .xml or .aaf, which can hold an empty track")
    if suffix == ".aaf":
        rate = timeline_rate(timeline)
        for item in timeline.find_children():
            if isinstance(item, otio.schema.Transition):
                own = item.in_offset.rate
            elif isinstance(item, (otio.schema.Clip, otio.schema.Gap)):
                own = item.duration().rate
            else:
                continue
            if abs(own - rate) > 1e-6:
                raise UsageError(f"{path}: cannot write {item.schema_name().lower()} {item.name!r}: its frames are "
                                 f"counted at {own:g} fps in a {rate:g} fps cut, and an AAF sequence has one edit "
                                 "rate; give it the cut's rate in the editor, or write .otio or .xml")


def _edl_reel(clip: otio.schema.Clip, base: Path) -> str:
    """A reel without spaces: the adapter derives one from a file or clip name keeping
    spaces, which splits the event line into the wrong number of fields."""
    path = media_path(clip.media_reference, base)
    stem = path.stem if path is not None else (clip.name or "")
    return re.sub(r"[^A-Za-z0-9]", "", stem)[:8] or "AX"


#: an EDL comment naming an event's media: ``* FROM CLIP:`` (avid), ``* OTIO REFERENCE FROM:`` (premiere)
_EDL_MEDIA_COMMENT = re.compile(r"^\*\s*(?:(?:FROM|TO)\s+(?:CLIP|FILE)|OTIO REFERENCE (?:FROM|TO)):\s*(?P<url>.+)$")


def _edl_text(timeline: otio.schema.Timeline, path: Path, base: Path, style: str, drop: bool) -> str:
    """The EDL of the timeline's one video track, record timecodes from its global start,
    with a title (CMX 3600 wants one), the FCM line the adapter omits, its timecodes counted
    as ``drop`` says (the adapter counts 29.97 drop frame whatever the cut does), and a
    ``* SOURCE FILE:`` line naming each event's media file, as Avid writes it."""
    track = timeline.video_tracks()[0]
    rate = timeline_rate(timeline)
    start = timeline.global_start_time
    if start is not None and start.value:
        # the adapter places events by the track's trimmed start, not the global start time
        own = track.source_range or track.available_range()
        start = start.rescaled_to(own.start_time.rate)
        track.source_range = otio.opentime.TimeRange(own.start_time - start, own.duration)
    for clip in track.find_clips():
        if clip.source_range is None:  # a clip playing all its media
            clip.source_range = clip.media_reference.available_range
        _plain_path(clip.media_reference, base)
        comments = clip.metadata.get("cmx_3600", {}).get("comments")
        if comments:  # the adapter writes a read EDL's other comments again; the file's is written below
            clip.metadata["cmx_3600"]["comments"] = [c for c in comments if not str(c).startswith("SOURCE FILE:")]
        reel = clip.metadata.get("cmx_3600", {}).get("reel")
        if not reel or " " in str(reel):
            clip.metadata.setdefault("cmx_3600", {})["reel"] = _edl_reel(clip, base)
    # only the video track: the adapter writes its first track, whatever its kind
    alone = otio.schema.Timeline(name=timeline.name or path.stem)
    timeline.tracks.remove(track)
    alone.tracks.append(track)
    text = otio.adapters.write_to_string(alone, adapter_name="cmx_3600", rate=rate, style=style)
    lines = []
    for line in text.splitlines():
        if not drop and _is_drop_frame_rate(rate):
            line = _edl_non_drop(line, rate)
        lines.append(line)
        named = _EDL_MEDIA_COMMENT.match(line.strip())
        name = file_name_in(named["url"]) if named else None
        if name:
            lines.append(f"* SOURCE FILE: {name}")
    fcm = "FCM: DROP FRAME" if drop else "FCM: NON-DROP FRAME"
    at = 1 if lines and lines[0].startswith("TITLE:") else 0
    return "\n".join([*lines[:at], fcm, *lines[at:]]) + "\n"


def _edl_non_drop(line: str, rate: float) -> str:
    """An EDL line's drop-frame timecodes (``;``) counted again as non-drop: the same frames,
    other labels (01:00:00;00 is frame 107892, which non-drop calls 00:59:56:12). Event lines
    have four; an M2 line and a ``* LOC:`` comment one each."""
    upper = line.lstrip().upper()
    count = 0 if line[:1].isdigit() else 1 if upper.startswith(("M2", "* LOC", "*LOC")) else None
    if count is None:
        return line

    def relabel(m: re.Match) -> str:
        if ";" not in m[0]:
            return m[0]
        frames = otio.opentime.from_timecode(m[0], rate)
        return otio.opentime.to_timecode(frames, rate, drop_frame=False)

    return _EDL_TIMECODE.sub(relabel, line, count=count)


def _prepare_xml(timeline: otio.schema.Timeline, base: Path, drop: bool) -> None:
    """File URLs, file names (the writer's fallback is the URL's still-encoded last part),
    an available range on every file (the writer needs one) and a source range on every
    clip, a ``<name>`` per track, the sequence's timecode shown as ``drop`` says, and
    swapgraph's metadata in a clip comment."""
    for track in timeline.tracks:
        if track.name:
            track.metadata.setdefault("fcp_xml", {})["name"] = track.name
    _xml_drop_frame(timeline, timeline.global_start_time, drop, override=True)
    for clip in timeline.find_clips():
        ref = clip.media_reference
        _file_url(ref, base)
        if isinstance(ref, otio.schema.ExternalReference):
            path = media_path(ref, base)
            if not ref.name and path is not None:
                ref.name = path.name
            _fill_available_range(clip, path)
            _xml_drop_frame(ref, ref.available_range.start_time if ref.available_range else None, drop)
        if clip.source_range is None:  # a clip playing all its media
            clip.source_range = ref.available_range
        if METADATA_KEY in clip.metadata:
            fcp = clip.metadata.setdefault("fcp_xml", {})
            comments = fcp.setdefault("comments", {})
            comments["clipcommenta"] = _stow(clip.metadata[METADATA_KEY])


def _fill_available_range(clip: otio.schema.Clip, path: Path | None) -> None:
    """The writers need the media's range: the file's own (its start timecode, else 0, and
    its frames), probed; the clip's source range only when the file cannot be read. A range
    taken from the clip would tell the editor the media starts where the clip does."""
    ref = clip.media_reference
    if ref.available_range is not None or clip.source_range is None:
        return
    rate = clip.source_range.start_time.rate
    try:
        info = api.media_info(path) if path is not None and path.is_file() else None
    except SwapgraphError:
        info = None
    if info is None:
        ref.available_range = clip.source_range
        return
    start = parse_timecode(info.timecode, info.fps) if info.timecode else 0
    ref.available_range = otio.opentime.TimeRange(otio.opentime.RationalTime(start, rate),
                                                  otio.opentime.RationalTime(info.frames, rate))


def _is_drop_frame_rate(rate: float) -> bool:
    """Whether drop-frame timecode exists at this rate (29.97, 59.94): OpenTimelineIO's test,
    which is also when the adapters count drop frame unless told otherwise."""
    return ";" in otio.opentime.to_timecode(otio.opentime.RationalTime(0, rate), rate)


def _xml_drop_frame(item: otio.core.SerializableObjectWithMetadata, start: otio.opentime.RationalTime | None,
                    drop: bool, *, override: bool = False) -> None:
    """Say how an item's timecode shows at 29.97 and 59.94, DF or NDF as ``drop`` says,
    unless the item says it already (a file read from XML does) and not ``override``."""
    if start is not None and _is_drop_frame_rate(start.rate):
        timecode = item.metadata.setdefault("fcp_xml", {}).setdefault("timecode", {})
        if override or "displayformat" not in timecode:
            timecode["displayformat"] = "DF" if drop else "NDF"


def _prepare_aaf(timeline: otio.schema.Timeline, base: Path, path: Path) -> None:
    """File URLs, an available range on every clip's media at the cut's rate (the writer
    needs one, at the sequence's edit rate: a range at another rate, as Avid states a 23.976
    file in a 29.97 sequence, is counted at the cut's, outward to whole frames), and
    swapgraph's metadata in a user comment of the clip's master mob. A file Avid links to
    (AMA) is described by a MultipleDescriptor, which the writer cannot rebuild (it fails
    on ``ImageAspectRatio``): that description is left out, and the writer's own stands in. A transition needs
    the AAF effect description only a cut read from AAF carries: refused without it."""
    bare = [t for t in timeline.find_children(descended_from_type=otio.schema.Transition)
            if "PointList" not in t.metadata.get("AAF", {})]
    if bare:
        raise UsageError(f"{path}: {len(bare)} transition(s) came from no AAF, and the AAF writer needs Avid's "
                         "description of each; write the cut as .xml or .otio, or start from the AAF cut")
    rate = timeline_rate(timeline)
    for clip in timeline.find_clips():
        ref = clip.media_reference
        _file_url(ref, base)
        _fill_available_range(clip, media_path(ref, base) if isinstance(ref, otio.schema.ExternalReference) else None)
        described = ref.metadata.get("AAF", {}) if ref is not None else {}
        if hasattr(described, "get") and str((described.get("EssenceDescription") or {}).get("ClassName")) \
                == "MultipleDescriptor":
            del described["EssenceDescription"]  # the writer describes the file its own way instead
        available = getattr(ref, "available_range", None)
        if available is not None and abs(available.start_time.rate - rate) > 1e-6:
            first = math.floor(available.start_time.rescaled_to(rate).value + 1e-6)
            end = math.ceil(available.end_time_exclusive().rescaled_to(rate).value - 1e-6)
            ref.available_range = otio.opentime.TimeRange(otio.opentime.RationalTime(first, rate),
                                                          otio.opentime.RationalTime(end - first, rate))
        if METADATA_KEY in clip.metadata:
            aaf = clip.metadata.setdefault("AAF", {})
            aaf.setdefault("UserComments", {})[_AAF_COMMENT] = _stow(clip.metadata[METADATA_KEY])


def _aaf_mark_drop_frame(path: Path, drop: bool) -> None:
    """Flag every timecode of a written AAF drop frame or not, as ``drop`` says: the writer
    flags the sequence's non-drop whatever the rate, and each tape's drop frame at any rate
    that is not a whole number (23.976 too, which has no drop frame)."""
    import aaf2

    with aaf2.open(str(path), "rw") as f:
        for mob in f.content.mobs:
            for slot in mob.slots:
                segments = slot.segment.components if isinstance(slot.segment, aaf2.components.Sequence) \
                    else [slot.segment]
                for segment in segments:
                    if isinstance(segment, aaf2.components.Timecode):
                        segment.drop = drop
