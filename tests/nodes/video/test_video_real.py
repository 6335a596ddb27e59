"""Real tier: the clips in ../shared/data (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from swapgraph.nodes.video.probe import probe_video, read_video

from helpers import GRAPHS, decode_all, shared_clips, stream_facts

pytestmark = pytest.mark.real
CLIPS = shared_clips() or ["(absent)"]


@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: getattr(p, "name", str(p)))
def test_transcode_keeps_frames_duration_and_audio(cli, clip, tmp_path):
    out = tmp_path / f"{clip.stem}.mp4"
    r = cli("run", GRAPHS / "transcode.json", "--set", f"plate.path={clip}", "--set", f"out.path={out}",
            "--set", "out.preset=ultrafast", "--set", "out.crf=28", "--quiet")
    assert r.code == 0, r.err
    src, got = stream_facts(clip), stream_facts(out)
    frame = 1 / float(probe_video(clip).info.fps)
    assert got["frames"] == src["frames"]
    assert got["video_duration"] == pytest.approx(src["video_duration"], abs=frame)
    assert [a["codec"] for a in got["audio"]] == [a["codec"] for a in src["audio"]]
    for a, b in zip(src["audio"], got["audio"]):
        assert b["duration"] == pytest.approx(a["duration"], abs=frame)
    assert got["metadata"]["synthetic_media"] == "true"


@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: getattr(p, "name", str(p)))
def test_index_matches_decoded_frames(clip):
    index = probe_video(clip)
    frames, pts = decode_all(clip)
    assert len(index.pts) == len(frames) == index.info.frame_count
    assert list(index.pts) == sorted(pts)
    assert (index.info.height, index.info.width) == frames.shape[1:3]


def test_ffv1_frame_exact_on_real_footage(cli, tmp_path):
    clip = next(c for c in shared_clips() if c.name == "d18.mp4")
    out = tmp_path / "d18.mkv"
    r = cli("run", GRAPHS / "transcode.json", "--set", f"plate.path={clip}", "--set", f"out.path={out}",
            "--set", "out.codec=ffv1", "--frames", "100-159", "--quiet")
    assert r.code == 0, r.err
    got, _ = decode_all(out)
    index = probe_video(clip)
    want = np.concatenate([np.stack(b[0]) for b in read_video(index, 100, 159, 16)])
    assert np.array_equal(got, want)
