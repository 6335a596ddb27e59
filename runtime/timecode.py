"""SMPTE timecode: the start timecode a file states, as a frame count and back.

Editors relink renders by timecode, so it must come out exact. Timecode counts frames at
the nominal rate, the rate rounded as FFmpeg rounds it (30 for 30000/1001, 24 for
24000/1001). Drop-frame timecode (``;`` before the frames) keeps to the clock at
30000/1001 and 60000/1001 fps by skipping the labels of frames 0-1 (0-3 at 59.94) at the
start of every minute except each tenth; it exists at no other rate. Timecode wraps at
24 hours, as it does on tape and in FFmpeg.

Convention: a count is frames since 00:00:00:00, so at 25 fps ``01:00:00:10`` is 90010.
"""

from __future__ import annotations

import re
from fractions import Fraction

from .errors import ParamError

#: the text form, for messages and param descriptions
TIMECODE_FORM = "HH:MM:SS:FF (HH:MM:SS;FF for drop-frame)"
DROP_FRAME_RATES = (Fraction(30000, 1001), Fraction(60000, 1001))

_TEXT = re.compile(r"(\d{2}):(\d{2}):(\d{2})([:;])(\d{2,3})")


def _rate(fps: Fraction | float | int) -> Fraction:
    """``fps`` as an exact fraction (a float 29.97002997... becomes 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


def nominal_rate(fps: Fraction | float | int) -> int:
    """The frames in one second of timecode: ``fps`` rounded half up, as FFmpeg does."""
    return max(1, int(_rate(fps) + Fraction(1, 2)))


def is_drop_frame(text: str) -> bool:
    """Whether ``text`` is drop-frame timecode: ``;`` before the frames (ParamError when
    it is no timecode)."""
    return check_timecode(text)[3] == ";"


def drop_frame_allowed(fps: Fraction | float | int) -> bool:
    """Whether drop-frame timecode exists at ``fps``: 30000/1001 and 60000/1001, give or
    take the rounding of a file's average rate (2997/100), never 30 or 60."""
    return any(abs(_rate(fps) - rate) < Fraction(1, 200) for rate in DROP_FRAME_RATES)


def timecode_problem(text: str) -> str | None:
    """What is wrong with the form of ``text`` (the checks that need no frame rate), or
    None; for validators that say the value and the fix their own way."""
    m = _TEXT.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        return f"expected a timecode {TIMECODE_FORM}, e.g. 01:00:00:00"
    if int(m[1]) > 23 or int(m[2]) > 59 or int(m[3]) > 59:
        return "a timecode's hours run 00-23, its minutes and seconds 00-59"
    return None


def check_timecode(text: str) -> tuple[int, int, int, str, int]:
    """The fields of ``text`` (hours, minutes, seconds, separator, frames); ParamError
    naming the value and the fix when ``timecode_problem`` finds one."""
    problem = timecode_problem(text)
    if problem is not None:
        raise ParamError(f"timecode {text!r}: {problem}; fix: write a time of day in that form")
    m = _TEXT.fullmatch(text.strip())
    return int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5])


def _drop_per_minute(fps: Fraction | float | int, what: str) -> int:
    """Frame labels skipped at each minute but every tenth: 2 at 29.97, 4 at 59.94."""
    if not drop_frame_allowed(fps):
        raise ParamError(f"{what} is drop-frame (';'), which only 29.97 and 59.94 fps have, and the rate is "
                         f"{float(_rate(fps)):g} fps; fix: write ':' before the frames")
    return nominal_rate(fps) // 15


def parse_timecode(text: str, fps: Fraction | float | int) -> int:
    """The frame count of ``text`` at ``fps`` (frames since 00:00:00:00; see the module's
    convention); ParamError when the text has no frame at that rate."""
    hh, mm, ss, sep, ff = check_timecode(text)
    base = nominal_rate(fps)
    if ff >= base:
        raise ParamError(f"timecode {text!r}: frame {ff} at {float(_rate(fps)):g} fps, where frames run "
                         f"00-{base - 1:02d}; fix: give a frame below {base}")
    frames = (hh * 3600 + mm * 60 + ss) * base + ff
    if sep == ":":
        return frames
    drop = _drop_per_minute(fps, f"timecode {text!r}")
    minutes = hh * 60 + mm
    if ss == 0 and ff < drop and mm % 10:
        raise ParamError(f"timecode {text!r} does not exist in drop-frame: frames 00-{drop - 1:02d} are skipped "
                         f"at each minute but every tenth; fix: write {hh:02d}:{mm:02d}:00;{drop:02d}")
    return frames - drop * (minutes - minutes // 10)


def format_timecode(frames: int, fps: Fraction | float | int, drop_frame: bool) -> str:
    """The timecode of frame count ``frames`` at ``fps`` (wrapping at 24 hours);
    ``drop_frame`` writes drop-frame timecode, which needs 30000/1001 or 60000/1001 fps."""
    base = nominal_rate(fps)
    if frames < 0:
        raise ParamError(f"frame count {frames}: timecode starts at 00:00:00:00; fix: give a count of 0 or more")
    if drop_frame:
        drop = _drop_per_minute(fps, "the timecode asked for")
        per_minute = base * 60 - drop
        per_ten = per_minute * 10 + drop
        tens, rest = divmod(frames, per_ten)
        # back to a label count: add the labels skipped before this frame
        skipped = 9 * drop * tens + (drop * ((rest - drop) // per_minute) if rest >= drop else 0)
        frames += skipped
    frames %= base * 86400
    seconds, ff = divmod(frames, base)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{';' if drop_frame else ':'}{ff:02d}"


def advance_timecode(text: str, frames: int, fps: Fraction | float | int) -> str:
    """``text`` moved ``frames`` frames later at ``fps``, in its own drop-frame style."""
    return format_timecode(parse_timecode(text, fps) + frames, fps, is_drop_frame(text))
