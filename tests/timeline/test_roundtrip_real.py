"""The round trip on the shared footage (H.264 at 30 fps with AAC, no timecode): an FCP7
XML cut of three clips from two takes, pulled with the default lossy transcode and
conformed; each record frame of the conform is the source frame the cut showed there
(it matches that frame better than its neighbours, at a PSNR a re-encode keeps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from helpers import GRAPHS, SHARED_CLIPS, decode_all
from swapgraph.timeline.formats import read_timeline, write_timeline

pytestmark = pytest.mark.real


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def test_real_footage_round_trip(tmp_path, cli):
    rate = 30
    rt = lambda v: otio.opentime.RationalTime(v, rate)  # noqa: E731
    cut = otio.schema.Timeline(name="real", global_start_time=rt(108000))
    track = otio.schema.Track(name="V1")
    for name, clip, start, duration in [("d3_a", "d3.mp4", 30, 24), ("d9_a", "d9.mp4", 200, 12),
                                        ("d3_b", "d3.mp4", 50, 20)]:
        track.append(otio.schema.Clip(
            name=name, media_reference=otio.schema.ExternalReference(target_url=str(SHARED_CLIPS / clip)),
            source_range=otio.opentime.TimeRange(rt(start), rt(duration))))
    cut.tracks.append(track)
    path = tmp_path / "real.xml"
    write_timeline(cut, path)
    out = tmp_path / "pull"
    r = cli("pull", path, "--select", "clip:^d3", "--graph", GRAPHS / "transcode.json", "--out", out,
            "--handles", "6", "--quiet")
    assert r.code == 0, r.err
    doc = json.loads((out / "pull.json").read_text())
    # d3_a (30-53) and d3_b (50-69) overlap with handles: one render, 24-75
    assert [(x["first"], x["last"]) for x in doc["renders"]] == [(24, 75)]
    new = tmp_path / "real_swapgraph.xml"
    assert cli("conform", path, "--pull", out, "--out", new).code == 0
    after = read_timeline(new)
    source = decode_all(SHARED_CLIPS / "d3.mp4")[0]
    render_path = out / doc["renders"][0]["file"]
    render = decode_all(render_path)[0]
    assert len(render) == 52
    swapgraph = after.video_tracks()[-1]
    checked = 0
    for i, item in enumerate(swapgraph):
        if not isinstance(item, otio.schema.Clip):
            continue
        record = swapgraph.range_of_child_at_index(i).start_time.to_frames()
        original = next(c for c in after.video_tracks()[0].find_clips()
                        if c.range_in_parent().start_time.to_frames() == record)
        for k in range(item.source_range.duration.to_frames()):
            media_frame = original.source_range.start_time.to_frames() + k
            picture = render[item.source_range.start_time.to_frames() + k
                             - item.media_reference.available_range.start_time.to_frames()]
            scores = [_psnr(source[media_frame + d], picture) for d in (-1, 0, 1)]
            assert scores[1] > 35 and scores[1] > max(scores[0], scores[2]), (record + k, scores)
            checked += 1
    assert checked == 24 + 20
