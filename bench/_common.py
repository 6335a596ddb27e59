"""What the benchmarks share: the default clip and CPU time."""

from __future__ import annotations

import resource
from pathlib import Path

from swapgraph.demo.clips import animate_photo, write_clip  # noqa: F401 - re-exported
from swapgraph.nodes.photos import packaged_photo  # noqa: F401 - re-exported

REPO = Path(__file__).resolve().parents[1]
SHARED_CLIP = REPO.parent / "shared" / "data" / "clips" / "d3.mp4"


def cpu_seconds() -> float:
    """CPU time of this process (all its threads), user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def default_clip(tmp: Path) -> Path:
    """``../shared/data/clips/d3.mp4``, or a clip made from a packaged photo where it is absent."""
    if SHARED_CLIP.is_file():
        return SHARED_CLIP
    print(f"{SHARED_CLIP} not found; using a clip made from the packaged grace_hopper photo")
    return write_clip(tmp / "grace.mp4", animate_photo(packaged_photo("grace_hopper"), 150))


def describe(clip: Path) -> str:
    """One line about a clip: size, frames, rate, audio."""
    import av

    with av.open(str(clip)) as c:
        v = c.streams.video[0]
        audio = ", ".join(s.codec_context.name for s in c.streams.audio) or "none"
        return (f"{clip.name}: {v.codec_context.width}x{v.codec_context.height}, {v.frames} frames "
                f"@ {float(v.average_rate):.3g} fps, audio {audio}")


def plain_transcode(clip: Path, out: Path, preset: str, crf: int, frames: int | None = None) -> int:
    """The baseline every graph is measured against, in plain PyAV: decode, round-trip through
    an rgb24 array, encode with libx264 (``crf``, ``preset``), remux the audio; stops after
    ``frames`` frames when given. Returns the frames written."""
    import av

    done = 0
    with av.open(str(clip)) as inp, av.open(str(out), "w") as dst:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"  # Decode threads its decoder too; a fair baseline does the same
        vout = dst.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
        vout.pix_fmt = "yuv420p"
        vout.time_base = vin.time_base
        vout.codec_context.options = {"crf": str(crf), "preset": preset}
        audio = {s.index: dst.add_stream_from_template(s) for s in inp.streams.audio}
        for packet in inp.demux(vin, *inp.streams.audio):
            if done == frames:
                break
            if packet.stream.index in audio:
                if packet.dts is not None:  # the demuxer's end-of-stream packet carries nothing
                    packet.stream = audio[packet.stream.index]
                    dst.mux(packet)
                continue
            for frame in packet.decode():
                if done == frames:
                    break
                new = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                new.pts, new.time_base = frame.pts, frame.time_base
                dst.mux(vout.encode(new))
                done += 1
        dst.mux(vout.encode(None))
    return done


def upscaled_clip(clip: Path, height: int, out: Path, frames: int) -> Path:
    """The first ``frames`` frames of ``clip`` resized to ``height`` (width to keep the
    aspect, even), libx264 crf 12 ultrafast, the audio left out: the 720p and 1080p inputs
    the GPU targets are stated at, made from a shared clip."""
    import av
    import cv2

    with av.open(str(clip)) as inp, av.open(str(out), "w") as dst:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        width = round(vin.codec_context.width * height / vin.codec_context.height / 2) * 2
        vout = dst.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.codec_context.options = {"crf": "12", "preset": "ultrafast"}
        for _, frame in zip(range(frames), inp.decode(vin)):
            big = cv2.resize(frame.to_ndarray(format="rgb24"), (width, height), interpolation=cv2.INTER_CUBIC)
            dst.mux(vout.encode(av.VideoFrame.from_ndarray(big, format="rgb24")))
        dst.mux(vout.encode(None))
    return out
