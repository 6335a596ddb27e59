"""Timeline files in and out: OpenTimelineIO (.otio), CMX 3600 EDL (.edl), FCP7 / Premiere XML
(.xml) and Avid AAF (.aaf), through OpenTimelineIO's adapters, chosen by the file's suffix.

Every format is read into the same shape: a Timeline whose ``global_start_time`` is the cut's
first record timecode (at the cut's rate), whose tracks start at that time and hold clips,
gaps and transitions, and whose clips give their source range in the media's own timecode
and their media as an ExternalReference (``media_path`` turns it into a file). What survives
a write and a read back, as ``tests/timeline/test_formats.py`` measures it (exact frames):

- ``.otio``: everything: tracks and their names, clips, gaps, record and source ranges,
  media URLs and available ranges, markers, every metadata namespace, any rate (29.97
  drop frame included).
- ``.xml`` (FCP7 xmeml, which Premiere and Resolve read too): video and audio tracks, clips
  (clips without media too), gaps, record and source ranges, the global start time, media
  as file URLs with their available range, clip markers. The adapter writes no track name,
  so a ``<name>`` goes into each ``<track>`` (its reader takes it from there). Clip metadata
  other than the adapter's ``fcp_xml`` is lost, except swapgraph's (``metadata["swapgraph"]``),
  which rides as JSON in the clip item's ``<comments><clipcommenta>`` and is taken out again
  on reading. At 29.97 and 59.94 timecodes are marked drop frame unless the item says how
  (the adapter would show 01:00:00;00 as 00:59:56:12 non-drop).
- ``.aaf``: tracks, video track names (audio tracks come back named "Sequence"), clips
  (clips without media too), gaps, record and source ranges, the global start time, media
  as file URLs (NetworkLocators) with their available range. Markers are lost (the adapter
  writes none); clip metadata other than ``AAF`` is lost, except swapgraph's, which rides as
  JSON in the master mob's user comment ``swapgraph``. Every clip needs an available range
  there: where its media lacks one, the clip's source range stands in. A clip without an
  AAF MobID gets a new one of its own. Transitions are written only with the AAF effect
  metadata a cut read from AAF carries (others are refused). The start timecode is flagged non-drop whatever the
  rate (the adapter's choice); its frames are exact.
- ``.edl``: one video track, no audio; clips with their record and source ranges (record
  timecodes include the global start time), media paths (``* FROM CLIP:`` in the 'avid'
  style, ``* OTIO REFERENCE FROM:`` in 'premiere'), clip markers (``* LOC:``). Lost: track
  names (the track reads back as "V"), metadata but reels, the global start time as such
  (it comes back as the first record timecode), and the rate: an EDL holds none, so it is
  read at the rate the caller gives. The 'avid' style keeps clip names (``* FROM CLIP
  NAME:``); 'premiere' names each clip after its media file. A reel (``cmx_3600`` metadata,
  else the media file's stem: letters and digits, eight at most) is written per event;
  'premiere' writes AX. 29.97 and 59.94 are written drop frame (``FCM: DROP FRAME``, ``;``
  timecodes; the adapter's choice, frames exact); on reading, an ``FCM: DROP FRAME`` EDL
  written with ``:`` (as Avid does) is read as drop frame too. Tracks of an EDL read start
  at the earliest track's first record timecode, later ones with a leading gap.
"""

from __future__ import annotations

import collections.abc
import copy
import json
import re
import urllib.parse
from pathlib import Path
from typing import Callable

import opentimelineio as otio
from otio_cmx3600_adapter.cmx_3600 import VALID_EDL_STYLES

from swapgraph import api
from swapgraph.runtime.errors import SwapgraphError, UsageError
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
    timeline's folder). None for other references, no URL, or a URL naming another host or
    scheme (no local file to open). Drive letters get no special handling."""
    if not isinstance(reference, otio.schema.ExternalReference) or not reference.target_url:
        return None
    url = reference.target_url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return None
        path = Path(urllib.parse.unquote(parts.path))
    elif len(parts.scheme) > 1:  # http:, s3:, ...; a one-letter "scheme" is a drive, a path
        return None
    else:
        path = Path(url)
    return path if path.is_absolute() else Path(base) / path


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
        if suffix == ".edl":
            text = _edl_drop_frame_separators(_read_text(path))
            result = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=edl_rate)
        else:
            result = otio.adapters.read_from_file(str(path), adapter_name=FORMATS[suffix])
    except Exception as exc:  # adapters raise anything on a file they cannot parse
        hint = (f"read at {edl_rate:g} fps: pass the cut's rate, or export the EDL again"
                if suffix == ".edl" else f"check it is an {_KIND[suffix]} file, or export it again")
        raise UsageError(f"{path}: cannot read this {_KIND[suffix]} file ({_first_line(exc)}); {hint}") from exc
    timeline = _only_timeline(result, path)
    _RESTORE.get(suffix, lambda t: None)(timeline)
    return timeline


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

def write_timeline(timeline: otio.schema.Timeline, path: Path, *, edl_style: str = "avid") -> None:
    """Write ``timeline`` to ``path`` in the format its suffix names, whole or not at all (a
    temporary name beside it, renamed when complete). What a format needs is done to a copy,
    never to ``timeline``. An EDL holds one video track: pass a timeline with exactly one;
    ``edl_style`` is the adapter's style ('avid': ``* FROM CLIP:`` lines and reels;
    'premiere': AX reels, clips named after their files). Problems are one-line
    ``UsageError``s, and then nothing is written."""
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
    work = copy.deepcopy(timeline)
    base = path.parent.absolute()
    try:
        with atomic_path(path) as temp:
            if suffix == ".edl":
                temp.write_text(_edl_text(work, path, base, edl_style), encoding="utf-8")
            elif suffix == ".xml":
                _prepare_xml(work, base)
                otio.adapters.write_to_file(work, str(temp), adapter_name="fcp_xml")
            elif suffix == ".aaf":
                _prepare_aaf(work, base, path)
                otio.adapters.write_to_file(work, str(temp), adapter_name="AAF", use_empty_mob_ids=True)
            else:
                otio.adapters.write_to_file(work, str(temp), adapter_name="otio_json")
    except SwapgraphError:
        raise
    except Exception as exc:  # an adapter refusing what the timeline holds
        raise UsageError(f"{path}: cannot write this timeline as {_KIND[suffix]} ({_first_line(exc)}); "
                         "write another format (.otio keeps everything)") from exc


def timeline_rate(timeline: otio.schema.Timeline) -> float:
    """A cut's rate: its global start time's, else its first clip's (24 with neither)."""
    if timeline.global_start_time is not None:
        return timeline.global_start_time.rate
    for clip in timeline.find_clips():
        if clip.source_range is not None:
            return clip.source_range.start_time.rate
    return EDL_DEFAULT_RATE


def _edl_reel(clip: otio.schema.Clip, base: Path) -> str:
    """A reel without spaces: the adapter derives one from a file or clip name keeping
    spaces, which splits the event line into the wrong number of fields."""
    path = media_path(clip.media_reference, base)
    stem = path.stem if path is not None else (clip.name or "")
    return re.sub(r"[^A-Za-z0-9]", "", stem)[:8] or "AX"


def _edl_text(timeline: otio.schema.Timeline, path: Path, base: Path, style: str) -> str:
    """The EDL of the timeline's one video track, record timecodes from its global start,
    with a title (CMX 3600 wants one) and the FCM line the adapter omits."""
    track = timeline.video_tracks()[0]
    rate = timeline_rate(timeline)
    start = timeline.global_start_time
    if start is not None and start.value:
        # the adapter places events by the track's trimmed start, not the global start time
        own = track.source_range or track.available_range()
        start = start.rescaled_to(own.start_time.rate)
        track.source_range = otio.opentime.TimeRange(own.start_time - start, own.duration)
    for clip in track.find_clips():
        _plain_path(clip.media_reference, base)
        reel = clip.metadata.get("cmx_3600", {}).get("reel")
        if not reel or " " in str(reel):
            clip.metadata.setdefault("cmx_3600", {})["reel"] = _edl_reel(clip, base)
    # only the video track: the adapter writes its first track, whatever its kind
    alone = otio.schema.Timeline(name=timeline.name or path.stem)
    timeline.tracks.remove(track)
    alone.tracks.append(track)
    text = otio.adapters.write_to_string(alone, adapter_name="cmx_3600", rate=rate, style=style)
    fcm = "FCM: DROP FRAME" if _is_drop_frame_rate(rate) else "FCM: NON-DROP FRAME"
    lines = text.splitlines()
    at = 1 if lines and lines[0].startswith("TITLE:") else 0
    return "\n".join([*lines[:at], fcm, *lines[at:]]) + "\n"


def _prepare_xml(timeline: otio.schema.Timeline, base: Path) -> None:
    """File URLs, file names (the writer's fallback is the URL's still-encoded last part),
    an available range on every file (the writer needs one), a ``<name>`` per track,
    swapgraph's metadata in a clip comment."""
    for track in timeline.tracks:
        if track.name:
            track.metadata.setdefault("fcp_xml", {})["name"] = track.name
    _xml_drop_frame(timeline, timeline.global_start_time)
    for clip in timeline.find_clips():
        ref = clip.media_reference
        _file_url(ref, base)
        if isinstance(ref, otio.schema.ExternalReference):
            path = media_path(ref, base)
            if not ref.name and path is not None:
                ref.name = path.name
            _fill_available_range(clip, path)
            _xml_drop_frame(ref, ref.available_range.start_time if ref.available_range else None)
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
    """Whether OpenTimelineIO (and so the EDL writer) writes this rate's timecode as drop frame."""
    return ";" in otio.opentime.to_timecode(otio.opentime.RationalTime(0, rate), rate)


def _xml_drop_frame(item: otio.core.SerializableObjectWithMetadata, start: otio.opentime.RationalTime | None) -> None:
    """Mark a timecode drop frame at 29.97 and 59.94 unless the item says how (a file read
    from XML does): the writer's default, non-drop, shows 01:00:00;00 as 00:59:56:12."""
    if start is not None and _is_drop_frame_rate(start.rate):
        timecode = item.metadata.setdefault("fcp_xml", {}).setdefault("timecode", {})
        if "displayformat" not in timecode:
            timecode["displayformat"] = "DF"


def _prepare_aaf(timeline: otio.schema.Timeline, base: Path, path: Path) -> None:
    """File URLs, an available range on every clip's media (the writer needs one), and
    swapgraph's metadata in a user comment of the clip's master mob. A transition needs
    the AAF effect description only a cut read from AAF carries: refused without it."""
    bare = [t for t in timeline.find_children(descended_from_type=otio.schema.Transition)
            if "PointList" not in t.metadata.get("AAF", {})]
    if bare:
        raise UsageError(f"{path}: {len(bare)} transition(s) came from no AAF, and the AAF writer needs Avid's "
                         "description of each; write the cut as .xml or .otio, or start from the AAF cut")
    for clip in timeline.find_clips():
        ref = clip.media_reference
        _file_url(ref, base)
        _fill_available_range(clip, media_path(ref, base) if isinstance(ref, otio.schema.ExternalReference) else None)
        if METADATA_KEY in clip.metadata:
            aaf = clip.metadata.setdefault("AAF", {})
            aaf.setdefault("UserComments", {})[_AAF_COMMENT] = _stow(clip.metadata[METADATA_KEY])
