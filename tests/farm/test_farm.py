"""The render farm: exact chunks, Dask render, resume, a killed worker, --plan and join.

Every render here is compared with a single run of the same graph, frame for frame, on
a graph with the stateful face nodes (detection with tracking and buckets, landmark
smoothing, the swap's model hold). The pre-rolls are set small so the shot is several
times longer than the pre-roll and late chunks really start part-way into it.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from helpers import (GRAPHS, animate_photo, decode_all, interrupt_at_progress, packaged_photo, stream_facts,
                     swapgraph_subprocess, write_clip)
from swapgraph.nodes.face.nodes import SmoothLandmarks
from swapgraph.nodes.swap_model import ModelInfo, SwapModel, save_model
from swapgraph import api
from swapgraph.farm.manifests import chunk_is_done, read_manifest
from swapgraph.farm.plan import plan_chunks
from swapgraph.runtime.graph.load import load_graph_document
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.registry import default_registry

FRAMES = 64
BATCH = 8
# small pre-rolls: detect 4 + 2, smooth 7 + 2, swap 3, so 18 frames in all
STATE = ["faces.max_missing=3", "faces.bucket_window=3", "smooth.window=8", "smooth.bucket_window=3", "swap.hold=2"]


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """A 64-frame shot, an (untrained, seeded) model, and a single run of swap.json on it."""
    root = tmp_path_factory.mktemp("farm")
    shot = write_clip(root / "shot.mp4", animate_photo(packaged_photo("grace_hopper"), FRAMES, size=(224, 224)))
    torch.manual_seed(0)
    save_model(root / "model", SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64))
    sets = [f"plate.path={shot}", f"swap.model={root / 'model'}", "out.codec=ffv1", *STATE]
    args = [a for s in sets for a in ("--set", s)]
    single = root / "single.mkv"
    proc = subprocess.run([sys.executable, "-m", "swapgraph.cli", "run", str(GRAPHS / "swap.json"), *args,
                           "--set", f"out.path={single}", "--batch-size", str(BATCH), "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    frames, pts = decode_all(single)
    return {"root": root, "shot": shot, "args": args, "single": single, "frames": frames, "pts": pts}


def render_args(farm, out: Path, *extra: str) -> list[str]:
    return ["render", str(GRAPHS / "swap.json"), *farm["args"], "--out", str(out), "--batch-size", str(BATCH),
            *extra]


def assert_same_frames(farm, path: Path, first: int = 0) -> None:
    frames, pts = decode_all(path)
    want = farm["frames"][first:first + len(frames)]
    assert frames.shape == want.shape
    differ = [i + first for i in range(len(frames)) if not np.array_equal(frames[i], want[i])]
    assert not differ, f"frames differ from the single run: {differ}"
    assert pts == [p - farm["pts"][first] for p in farm["pts"][first:first + len(frames)]]


def manifests(folder: Path) -> list[dict]:
    return [read_manifest(p) for p in sorted(folder.glob("chunk-*.manifest.json"))]


def test_graph_preroll_adds_up_along_the_longest_path(farm):
    doc = load_graph_document(GRAPHS / "swap.json")
    graph = validate_graph(doc, default_registry(), path=GRAPHS / "swap.json", overrides=farm["args"][1::2])
    need = graph.input_prerolls()
    assert need["out"] == need["blend"] == need["mask"] == 0
    assert need["swap"] == 3 and need["crops"] == 3  # Align feeds the swap's hold
    assert need["smooth"] == 3 + 7 + 2
    assert need["faces"] == need["smooth"] + 4 + 2
    assert graph.preroll() == need["faces"] == 18


def test_a_frame_range_is_rendered_as_the_whole_run_renders_it(farm, cli, tmp_path, monkeypatch):
    # the last chunk starts 40 frames in: 18 frames of pre-roll (out to whole batches) do not reach frame 0
    out = tmp_path / "range.mkv"
    r = cli("run", GRAPHS / "swap.json", *farm["args"], "--set", f"out.path={out}", "--frames", "43-59",
            "--batch-size", str(BATCH), "--quiet")
    assert r.code == 0, r.err
    assert_same_frames(farm, out, first=43)
    sidecar = json.loads(out.with_name(out.name + ".swapgraph.json").read_text())
    assert sidecar["source_frames"] == [43, 59] and sidecar["preroll"] == 18
    assert sidecar["node_seconds"]  # the run's own summary

    # the control: the same range with the smoother claiming no pre-roll is not the same
    monkeypatch.setattr(SmoothLandmarks, "preroll", classmethod(lambda cls, params: 0))
    wrong = tmp_path / "wrong.mkv"
    r = cli("run", GRAPHS / "swap.json", *farm["args"], "--set", f"out.path={wrong}", "--frames", "43-59",
            "--batch-size", str(BATCH), "--quiet")
    assert r.code == 0, r.err
    got, _ = decode_all(wrong)
    assert not np.array_equal(got, farm["frames"][43:60])


def test_chunked_render_on_two_local_workers_is_the_single_run(farm, cli, tmp_path):
    out = tmp_path / "render.mkv"
    r = cli(*render_args(farm, out, "--chunk-size", "16", "--workers", "2"))
    assert r.code == 0, r.err
    assert "4 chunks" in r.err and "0 already done, 4 to run" in r.err
    assert_same_frames(farm, out)
    docs = manifests(out.with_name("render.mkv.chunks"))
    assert [d["frames"] for d in docs] == [[0, 15], [16, 31], [32, 47], [48, 63]]
    assert len({d["render_key"] for d in docs}) == 1 and all(d["files"][0]["sha256"] and d["graph_hash"] for d in docs)
    assert len({d["pid"] for d in docs}) == 2  # both workers rendered chunks
    assert sum(d["stats"]["swap"]["models_read"] for d in docs) == 2  # each worker read the model once
    facts, single = stream_facts(out), stream_facts(farm["single"])
    assert facts["frames"] == FRAMES and facts["metadata"].get("SYNTHETIC_MEDIA") == "true"
    assert [a["codec"] for a in facts["audio"]] == [a["codec"] for a in single["audio"]] == ["aac"]
    assert facts["audio"][0]["duration"] == pytest.approx(single["audio"][0]["duration"], abs=0.03)
    sidecar = json.loads(out.with_name(out.name + ".swapgraph.json").read_text())
    assert sidecar["synthetic_media"] is True and len(sidecar["chunks"]) == 4 and sidecar["frames_written"] == FRAMES

    # run again: every chunk is done with the same graph, so only the join runs
    r = cli(*render_args(farm, out, "--chunk-size", "16", "--workers", "2"))
    assert r.code == 0, r.err
    assert "4 already done, 0 to run" in r.err
    # another chunk size is another plan: its chunks replace the old ones in the folder
    r = cli(*render_args(farm, out, "--chunk-size", "32", "--workers", "2"))
    assert r.code == 0, r.err
    assert "0 already done, 2 to run" in r.err
    assert [d["frames"] for d in manifests(out.with_name("render.mkv.chunks"))] == [[0, 31], [32, 63]]
    assert sorted(p.name for p in out.with_name("render.mkv.chunks").glob("*.mkv")) == [
        "chunk-000000-000031.mkv", "chunk-000032-000063.mkv"]
    assert_same_frames(farm, out)
    # a changed param is another graph: none of these chunks counts as done for it
    same = api.plan_render(api.load(GRAPHS / "swap.json", farm["args"][1::2]), out, chunk_size=32, batch_size=BATCH)
    other = api.plan_render(api.load(GRAPHS / "swap.json", [*farm["args"][1::2], "color.strength=0.5"]), out, chunk_size=32,
                            batch_size=BATCH)
    assert other.key != same.key
    assert all(chunk_is_done(same.chunk_manifest(c), same.key, c.first, c.last) for c in same.chunks)
    assert not any(chunk_is_done(other.chunk_manifest(c), other.key, c.first, c.last) for c in other.chunks)


def test_a_render_in_this_process_without_dask_is_the_single_run(farm, cli, tmp_path):
    import os

    out = tmp_path / "inline.mkv"
    r = cli(*render_args(farm, out, "--chunk-size", "32", "--workers", "0"))
    assert r.code == 0, r.err
    assert "0 already done, 2 to run" in r.err
    assert_same_frames(farm, out)
    docs = manifests(out.with_name("inline.mkv.chunks"))
    assert [d["frames"] for d in docs] == [[0, 31], [32, 63]] and {d["pid"] for d in docs} == {os.getpid()}
    r = cli(*render_args(farm, out, "--chunk-size", "32", "--workers", "0", "--scheduler", "tcp://localhost:1"))
    assert r.code == 2 and "not allowed with argument" in r.err  # one or the other


def test_inline_jobs_retry_like_dask_jobs(tmp_path):
    from swapgraph.farm.cluster import ChunkFailed, run_inline
    from swapgraph.runtime.errors import SwapgraphError

    tries: dict[str, int] = {}

    def flaky(name: str, code: int) -> str:
        tries[name] = tries.get(name, 0) + 1
        if tries[name] == 1 or code == 2:
            raise ChunkFailed("here", f"{name} fails", code)
        return name

    logged: list[str] = []
    done: dict[str, str] = {}
    assert run_inline({"a": ("a", 1), "b": ("b", 1)}, flaky, retries=1, on_done=done.__setitem__,
                      log=logged.append) == {"a": 2, "b": 2}
    assert done == {"a": "a", "b": "b"} and len(logged) == 2
    with pytest.raises(SwapgraphError, match="c failed: c fails") as info:
        run_inline({"c": ("c", 1)}, flaky, retries=0, log=logged.append)
    assert info.value.exit_code == 1
    with pytest.raises(SwapgraphError, match="d fails") as info:
        run_inline({"d": ("d", 2)}, flaky, retries=3, log=logged.append)
    assert info.value.exit_code == 2 and tries["d"] == 1  # a user error is not retried


def test_a_killed_render_reruns_only_the_unfinished_chunks(farm, tmp_path):
    out = tmp_path / "resumed.mkv"
    chunks = out.with_name("resumed.mkv.chunks")
    proc = swapgraph_subprocess(*render_args(farm, out, "--chunk-size", "8", "--workers", "1"), start_new_session=True)
    deadline = time.monotonic() + 300
    while len(list(chunks.glob("chunk-*.manifest.json"))) < 3:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the render and its workers, as a lost farm node
    proc.wait()
    before = {d["frames"][0]: d["run_id"] for d in manifests(chunks)}
    done_before = len(before)
    assert 3 <= done_before < 8 and not out.exists() and len(set(before.values())) == 1

    proc = swapgraph_subprocess(*render_args(farm, out, "--chunk-size", "8", "--workers", "1"))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert f"{done_before} already done, {8 - done_before} to run" in err
    after = {d["frames"][0]: d["run_id"] for d in manifests(chunks)}
    assert len(after) == 8 and all(after[k] == v for k, v in before.items())  # the done chunks were not redone
    rerun = set(after.values()) - set(before.values())
    assert len(rerun) == 1 and list(after.values()).count(rerun.pop()) == 8 - done_before
    assert not list(chunks.glob(".*partial*"))
    assert_same_frames(farm, out)


def test_a_worker_killed_during_a_chunk_is_retried_and_every_frame_lands(farm, tmp_path):
    out = tmp_path / "survivor.mkv"
    chunks = out.with_name("survivor.mkv.chunks")
    proc = swapgraph_subprocess(*render_args(farm, out, "--chunk-size", "16", "--workers", "2"),
                                start_new_session=True)
    deadline = time.monotonic() + 300
    victim = None
    while victim is None:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        partial = sorted(chunks.glob(".chunk-*.partial-*")) if chunks.is_dir() else []
        if partial:  # a worker is writing a chunk: its pid is in the temporary name
            victim = int(partial[0].name.rsplit("partial-", 1)[1].split("-")[0])
        time.sleep(0.05)
    os.kill(victim, signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert victim not in {d["pid"] for d in manifests(chunks)}
    assert_same_frames(farm, out)


def test_plan_commands_run_one_by_one_then_join_give_the_render(farm, cli, tmp_path):
    rendered = tmp_path / "rendered.mkv"
    plan = api.plan_render(api.load(GRAPHS / "swap.json", farm["args"][1::2]), rendered, chunk_size=24, batch_size=BATCH)
    seen: list[int] = []
    api.render(plan, progress=lambda done, total: seen.append((done, total)))
    # one bar over all chunks: frames as the worker reports them, up to the shot's frames
    assert seen[-1] == (FRAMES, FRAMES) and {t for _, t in seen} == {FRAMES}
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and any(0 < d < FRAMES for d, _ in seen)
    planned = tmp_path / "planned.mkv"
    r = cli(*render_args(farm, planned, "--chunk-size", "24", "--plan"))
    assert r.code == 0, r.err
    lines = [line for line in r.out.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 4  # 0-23, 24-47, 48-63, then the join
    assert all(line.startswith("swapgraph run ") and "--frames" in line and "--manifest" in line for line in lines[:3])
    assert lines[3] == f"swapgraph join {tmp_path / 'planned.mkv.chunks'} --out {planned}"
    for line in reversed(lines[:3]):  # in any order
        r = cli(*shlex.split(line)[1:])
        assert r.code == 0, r.err
    r = cli(*shlex.split(lines[3])[1:])
    assert r.code == 0, r.err

    def packets(path):
        with av.open(str(path)) as c:
            return [(p.pts, bytes(p)) for p in c.demux(c.streams.video[0]) if p.size]

    assert packets(planned) == packets(rendered)
    assert_same_frames(farm, planned)


def test_join_refuses_gaps_and_changed_chunks(farm, cli, tmp_path):
    out = tmp_path / "j.mkv"
    r = cli(*render_args(farm, out, "--chunk-size", "32", "--plan"))
    lines = [line for line in r.out.splitlines() if line.startswith("swapgraph run")]
    assert cli(*shlex.split(lines[1])[1:]).code == 0  # only the second chunk
    r = cli("join", tmp_path / "j.mkv.chunks", "--out", out)
    assert r.code == 2 and len(r.error_lines) == 1
    assert cli(*shlex.split(lines[0])[1:]).code == 0
    chunk = tmp_path / "j.mkv.chunks" / "chunk-000000-000031.mkv"
    chunk.write_bytes(chunk.read_bytes()[:-100])
    r = cli("join", tmp_path / "j.mkv.chunks", "--out", out)
    assert r.code == 2 and "does not match the hash" in r.err and "rerun that chunk" in r.err
    assert not out.exists()


def _limited(max_bytes: int):
    def apply():  # a disk that fills up: writes past the limit fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return apply


def test_a_full_disk_is_one_clear_error_and_nothing_half_written(farm, cli, tmp_path):
    out = tmp_path / "full.mkv"
    plan = cli(*render_args(farm, out, "--chunk-size", "32", "--plan")).out.splitlines()
    for line in plan:
        if line.startswith("swapgraph run"):
            assert cli(*shlex.split(line)[1:]).code == 0
    size = sum(p.stat().st_size for p in (tmp_path / "full.mkv.chunks").glob("*.mkv"))
    proc = subprocess.run([sys.executable, "-m", "swapgraph.cli", "join", str(tmp_path / "full.mkv.chunks"),
                           "--out", str(out)], capture_output=True, text=True, preexec_fn=_limited(size // 2))
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "disk is full" in errors[0] and str(out) in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.mkv.chunks"]

    # a chunk's own run on a full disk: the same, and its manifest is not written
    one = shlex.split(next(line for line in plan if line.startswith("swapgraph run")))[1:]
    manifest = Path(one[one.index("--manifest") + 1])
    manifest.unlink()
    proc = subprocess.run([sys.executable, "-m", "swapgraph.cli", *one], capture_output=True, text=True,
                          preexec_fn=_limited(20_000))
    assert proc.returncode == 2 and "disk is full" in proc.stderr, proc.stderr
    assert not manifest.exists() and not list((tmp_path / "full.mkv.chunks").glob(".*partial*"))


@pytest.mark.parametrize("extra, where", [
    (["--set", "faces.keep=0"], "param 'keep'"),
    (["--out", "SHOT/x.mkv"], "--out"),
    (["--chunk-size", "0"], "--chunk-size"),
    (["--node", "blend"], "--node 'blend'"),
])
def test_render_refuses_what_it_cannot_chunk_or_write(farm, cli, tmp_path, extra, where):
    extra = [a.replace("SHOT", str(farm["shot"])) for a in extra]  # under a file: no folder can be made there
    out = ["--out", str(tmp_path / "x.mkv")] if "--out" not in extra else []
    r = cli("render", GRAPHS / "swap.json", *farm["args"], *out, *extra)
    assert r.code == 2 and len(r.error_lines) == 1 and where in r.error_lines[0], r.err
    assert not list(tmp_path.iterdir())


def test_render_refuses_a_measured_per_shot_downscale(farm, cli, tmp_path):
    r = cli("render", GRAPHS / "swap_downscaled.json", "--set", f"plate.path={farm['shot']}",
            "--set", f"swap.model={farm['root'] / 'model'}", "--out", tmp_path / "d.mp4")
    assert r.code == 2 and "param 'scale'" in r.err and "down.scale=S" in r.err, r.err


def test_chunks_sit_on_batch_boundaries():
    assert [(c.first, c.last) for c in plan_chunks(0, 63, 16)] == [(0, 15), (16, 31), (32, 47), (48, 63)]
    assert [(c.first, c.last) for c in plan_chunks(5, 40, 16)] == [(5, 15), (16, 31), (32, 40)]


def test_a_failed_chunk_is_retried_on_another_worker(tmp_path):
    import logging

    from distributed import Client, LocalCluster

    from helpers import fails_as_user_error, fails_once_per_marker
    from swapgraph.runtime.errors import SwapgraphError
    from swapgraph.farm.cluster import run_jobs

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        jobs = {f"job {i}": (str(tmp_path / f"marker{i}"),) for i in range(3)}
        ran_on, logged = {}, []
        attempts = run_jobs(client, jobs, fails_once_per_marker, retries=1,
                            on_done=lambda name, worker: ran_on.update({name: worker}), log=logged.append)
        assert attempts == {name: 2 for name in jobs} and len(logged) == 3
        for i, name in enumerate(jobs):  # each retry ran on the worker the job had not failed on
            assert ran_on[name] != (tmp_path / f"marker{i}").read_text()
        assert all("retrying on another worker" in line for line in logged)

        with pytest.raises(SwapgraphError, match="job 9 failed: the first try fails") as info:
            run_jobs(client, {"job 9": (str(tmp_path / "marker9"),)}, fails_once_per_marker, retries=0, log=print)
        assert info.value.exit_code == 1

        # a user error would fail anywhere: no retry, exit code 2
        with pytest.raises(SwapgraphError, match="the disk is full") as info:
            run_jobs(client, {"full": (str(tmp_path / "tries"),)}, fails_as_user_error, retries=3, log=print)
        assert info.value.exit_code == 2 and (tmp_path / "tries").read_text() == "1"


def test_a_worker_loads_each_model_once(farm, tmp_path):
    from swapgraph.nodes import swap_model

    first, _ = swap_model.load_model_cached(farm["root"] / "model")
    again, _ = swap_model.load_model_cached(farm["root"] / "model")
    assert again is first  # the second chunk on a worker reuses the loaded model
    copy = tmp_path / "model"
    save_model(copy, SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64))
    other, _ = swap_model.load_model_cached(copy)
    assert other is not first
    save_model(copy, SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64))  # retrained: loaded afresh
    assert swap_model.load_model_cached(copy)[0] is not other


def test_an_h264_render_joins_into_one_stream_that_plays(farm, cli, tmp_path):
    """Chunks of libx264 with B-frames: the join moves each chunk's timestamps into place
    and keeps decode order monotonic, and the audio is the plate's."""
    single, joined = tmp_path / "single.mp4", tmp_path / "joined.mp4"
    sets = ["--set", f"plate.path={farm['shot']}", "--batch-size", str(BATCH)]
    assert cli("run", GRAPHS / "transcode.json", *sets, "--set", f"out.path={single}", "--quiet").code == 0
    r = cli("render", GRAPHS / "transcode.json", *sets, "--out", joined, "--chunk-size", "16", "--quiet")
    assert r.code == 0, r.err
    with av.open(str(joined)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
        assert c.streams.video[0].codec_context.name == "h264" and c.metadata.get("synthetic_media") == "true"
    dts = [p.dts for p in packets]
    assert dts == sorted(dts) and len(set(dts)) == len(dts)
    assert sum(p.is_keyframe for p in packets) >= 4  # every chunk starts on a keyframe
    frames, pts = decode_all(joined)
    want, want_pts = decode_all(single)
    assert pts == want_pts and len(frames) == FRAMES
    # re-encoded per chunk, so not bit-equal to the single run, but the same pictures
    mse = np.mean((frames.astype(float) - want.astype(float)) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 38
    facts, plate = stream_facts(joined), stream_facts(farm["shot"])
    assert facts["audio"][0]["codec"] == "aac"
    assert facts["audio"][0]["duration"] == pytest.approx(plate["audio"][0]["duration"], abs=0.03)


def test_render_on_a_scheduler_whose_workers_offer_a_gpu_resource(farm, cli, tmp_path):
    """--scheduler: chunks go to that cluster's workers; workers that advertise GPU=1 make
    each chunk ask for it (one at a time per GPU), on `device: auto`."""
    import logging

    from distributed import LocalCluster

    single, rendered = tmp_path / "single.mkv", tmp_path / "rendered.mkv"
    sets = ["--set", f"plate.path={farm['shot']}", "--set", "out.codec=ffv1", "--batch-size", str(BATCH)]
    assert cli("run", GRAPHS / "transcode.json", *sets, "--set", f"out.path={single}", "--quiet").code == 0
    with LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=None, silence_logs=logging.ERROR,
                      resources={"GPU": 1}) as cluster:
        r = cli("render", GRAPHS / "transcode.json", *sets, "--out", rendered, "--chunk-size", "16",
                "--scheduler", cluster.scheduler_address)
        assert r.code == 0, r.err
        # one GPU, two task threads: chunks still ran one at a time
        docs = manifests(tmp_path / "rendered.mkv.chunks")
        assert len(docs) == 4 and len({d["pid"] for d in docs}) == 1
    assert np.array_equal(decode_all(rendered)[0], decode_all(single)[0])
    r = cli("render", GRAPHS / "transcode.json", *sets, "--out", rendered, "--scheduler", "tcp://127.0.0.1:9")
    assert r.code == 2 and "--scheduler" in r.error_lines[-1]


def test_a_render_on_a_full_disk_stops_with_one_line_and_leaves_nothing(farm, tmp_path):
    out = tmp_path / "full.mkv"
    proc = subprocess.run([sys.executable, "-m", "swapgraph.cli", *render_args(farm, out, "--chunk-size", "32")],
                          capture_output=True, text=True, preexec_fn=_limited(50_000), timeout=600)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1 and "disk is full" in errors[0], proc.stderr
    chunks = tmp_path / "full.mkv.chunks"
    assert not out.exists() and not list(chunks.glob("*.manifest.json")) and not list(chunks.glob(".*partial*"))


@pytest.mark.parametrize(("workers", "sig"), [("0", signal.SIGINT), ("1", signal.SIGTERM)],
                         ids=["INT-in-process", "TERM-dask"])
def test_ctrl_c_and_sigterm_stop_a_render_with_nothing_at_the_output(tmp_path, workers, sig):
    """The cancelled chunk is not retried as a failure: the render stops, exit 130, no join."""
    plate = write_clip(tmp_path / "long.mp4", animate_photo(packaged_photo("astronaut"), 240, size=(256, 256)))
    out = tmp_path / "r.mp4"
    code, shown = interrupt_at_progress(
        ["render", GRAPHS / "rescale.json", "--set", f"plate.path={plate}", "--set", "out.preset=veryslow",
         "--out", out, "--workers", workers, "--chunk-size", "120", "--batch-size", "2"], sig, at=10)
    assert code == 130, shown[-800:]
    assert shown.strip().splitlines()[-1].strip().startswith("error: "), shown[-800:]
    assert "retrying" not in shown
    assert not out.exists() and not out.with_name(out.name + ".swapgraph.json").exists()
