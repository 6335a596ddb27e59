"""A user's folder (a plate and notes in it) survives every command pointed at it.

Each command is given the folder, a file in it or the plate itself where it writes; each
refuses before doing any work, with exit code 2 and one line naming the path and the fix,
and the folder's files are byte for byte what they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import GRAPHS, animate_photo, packaged_photo, write_clip, write_photo_faceset


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def plate(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("plate") / "plate.mp4",
                      animate_photo(packaged_photo("grace_hopper"), 12, size=(96, 96)))


@pytest.fixture
def shots(tmp_path, plate) -> Path:
    """The user's folder: their plate, their notes, a sub-folder of their own."""
    folder = tmp_path / "shots"
    (folder / "refs").mkdir(parents=True)
    shutil.copy(plate, folder / "plate.mp4")
    (folder / "notes.txt").write_text("client notes: keep the grade\n")
    (folder / "refs" / "look.png").write_bytes(b"\x89PNG not really")
    (folder / "o.mp4").mkdir()  # a folder named like a video
    return folder


def commands(shots: Path, tmp_path: Path) -> dict[str, list[str]]:
    plate = shots / "plate.mp4"
    faceset = write_photo_faceset(tmp_path / "faceset", "grace_hopper", faces=8)
    transcode = ["run", str(GRAPHS / "transcode.json"), "--set", f"plate.path={plate}"]
    return {
        "run png into the plate's folder": [*transcode, "--set", "out.codec=png", "--set", f"out.path={shots}"],
        "run into a folder named like a video": [*transcode, "--set", f"out.path={shots / 'o.mp4'}"],
        "run over the user's notes": [*transcode, "--set", "out.codec=png", "--set", f"out.path={shots / 'refs'}"],
        "run over the plate itself": [*transcode, "--set", f"out.path={plate}"],
        "run over a file swapgraph did not write": [*transcode, "--set", f"out.path={shots / 'notes.txt'}"],
        "preview into the folder": ["preview", str(GRAPHS / "transcode.json"), "--set", f"plate.path={plate}",
                                    "--set", f"out.path={tmp_path / 'x.mp4'}", "--node", "plate", "--frame", "0",
                                    "-o", str(shots)],
        "preview over the plate": ["preview", str(GRAPHS / "transcode.json"), "--set", f"plate.path={plate}",
                                   "--set", f"out.path={tmp_path / 'x.mp4'}", "--node", "plate", "--frame", "0",
                                   "-o", str(plate)],
        "preview over a PNG of the user's": ["preview", str(GRAPHS / "transcode.json"), "--set", f"plate.path={plate}",
                                             "--set", f"out.path={tmp_path / 'x.mp4'}", "--node", "plate", "--frame",
                                             "0", "-o", str(shots / "refs" / "look.png")],
        "extract a faceset into the folder": ["run", str(GRAPHS / "extract.json"), "--set", f"plate.path={plate}",
                                              "--set", f"faceset.path={shots}"],
        "faceset filter into the folder": ["faceset", "filter", str(faceset), "--out", str(shots)],
        "render with the folder as chunks": ["render", str(GRAPHS / "transcode.json"), "--set", f"plate.path={plate}",
                                             "--out", str(tmp_path / "r.mkv"), "--set", "out.codec=ffv1",
                                             "--chunks", str(shots), "--workers", "0"],
        "render into the folder named like a video": ["render", str(GRAPHS / "transcode.json"), "--set",
                                                      f"plate.path={plate}", "--out", str(shots / "o.mp4"),
                                                      "--workers", "0"],
        "join the folder": ["join", str(shots), "--out", str(tmp_path / "j.mp4")],
        "swap with the folder as its work": ["swap", str(plate), str(faceset), "--out", str(tmp_path / "s.mp4"),
                                            "--work", str(shots), "--steps", "5"],
        "swap with zero steps": ["swap", str(plate), str(faceset), "--out", str(tmp_path / "s.mp4"), "--steps", "0"],
        "train into the folder": ["train", "--a", str(faceset), "--b", str(faceset), "--out", str(shots),
                                  "--steps", "2"],
    }


CASES = ["run png into the plate's folder", "run into a folder named like a video", "run over the user's notes",
         "run over the plate itself", "run over a file swapgraph did not write", "preview into the folder",
         "preview over the plate", "preview over a PNG of the user's", "extract a faceset into the folder",
         "faceset filter into the folder", "render with the folder as chunks",
         "render into the folder named like a video", "join the folder", "swap with the folder as its work",
         "swap with zero steps", "train into the folder"]


@pytest.mark.parametrize("case", CASES)
def test_a_user_folder_survives_every_command_pointed_at_it(case, cli, shots, tmp_path):
    args = commands(shots, tmp_path)[case]
    before = snapshot(shots)
    r = cli(*args)
    assert r.code == 2, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.err, r.err
    assert snapshot(shots) == before
    assert sorted(p.name for p in shots.iterdir()) == ["notes.txt", "o.mp4", "plate.mp4", "refs"]
    for made in ("x.mp4", "r.mkv", "j.mp4", "s.mp4", "s.work"):
        assert not (tmp_path / made).exists(), made


def test_an_earlier_output_is_replaced_and_a_user_file_added_to_it_is_not(cli, plate, tmp_path):
    """swapgraph's own PNG sequence is replaced on a second run; once the user puts a file of
    their own in it, the folder is theirs again and the run is refused."""
    out = tmp_path / "seq"
    args = ["run", str(GRAPHS / "transcode.json"), "--set", f"plate.path={plate}", "--set", "out.codec=png",
            "--set", f"out.path={out}"]
    assert cli(*args).code == 0
    assert cli(*args, "--frames", "0-3").code == 0
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:06d}.png" for i in range(4)]
    (out / "keep.txt").write_text("mine")
    r = cli(*args)
    assert r.code == 2 and "'keep.txt'" in r.err and "swapgraph did not write" in r.err
    assert (out / "keep.txt").read_text() == "mine" and len(list(out.glob("*.png"))) == 4


def test_render_clean_deletes_only_what_the_manifests_name(cli, plate, tmp_path):
    out = tmp_path / "r.mkv"
    args = ["render", str(GRAPHS / "transcode.json"), "--set", f"plate.path={plate}", "--set", "out.codec=ffv1",
            "--out", str(out), "--workers", "0", "--chunk-size", "4", "--batch-size", "4"]
    assert cli(*args).code == 0
    chunks = tmp_path / "r.mkv.chunks"
    assert len(list(chunks.glob("chunk-*.manifest.json"))) == 3
    (chunks / "notes.txt").write_text("a note the user left beside the chunks")
    r = cli(*args, "--clean")
    assert r.code == 0, r.err
    # the chunks went, the note stayed (and the marker: the folder is still the render's)
    assert sorted(p.name for p in chunks.iterdir()) == [".swapgraph-output.json", "notes.txt"]
    (chunks / "notes.txt").unlink()
    assert cli(*args, "--clean").code == 0
    assert not chunks.exists()  # nothing else was left: the folder went too
    assert out.is_file()


def test_join_refuses_to_write_over_one_of_its_own_chunks(cli, plate, tmp_path):
    out = tmp_path / "r.mkv"
    assert cli("render", str(GRAPHS / "transcode.json"), "--set", f"plate.path={plate}", "--set", "out.codec=ffv1",
               "--out", str(out), "--workers", "0", "--chunk-size", "4", "--batch-size", "4").code == 0
    chunks = tmp_path / "r.mkv.chunks"
    victim = sorted(chunks.glob("chunk-*.mkv"))[0]
    before = snapshot(chunks)
    r = cli("join", str(chunks), "--out", str(victim))
    assert r.code == 2 and "--out" in r.err and "input" in r.err, r.err
    assert snapshot(chunks) == before
    doc = json.loads(sorted(chunks.glob("chunk-*.manifest.json"))[0].read_text())
    assert doc["files"][0]["name"] == victim.name
