"""Outputs written whole or not at all, readable by whoever the umask lets read them."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from swapgraph.nodes.swap_model import INFO_FILE, MODEL_FILE, ModelInfo, SwapModel, save_model
from swapgraph.runtime.files import atomic_path, can_write, file_mode, write_json_atomic


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_writer_that_makes_0600_files_publishes_with_the_umasks_mode(tmp_path):
    raw = tmp_path / "raw.safetensors"
    save_file({"w": torch.zeros(3)}, str(raw))
    assert mode(raw) == 0o600  # what safetensors does on its own: farm workers as another user could not read it
    with atomic_path(tmp_path / "w.safetensors") as temp:
        save_file({"w": torch.zeros(3)}, str(temp))
    assert mode(tmp_path / "w.safetensors") == file_mode() and file_mode() == 0o666 & ~_umask()


def test_a_model_folder_is_readable_as_any_other_output(tmp_path):
    save_model(tmp_path / "m", SwapModel("lite-64"), ModelInfo(preset="lite-64", size=64))
    write_json_atomic(tmp_path / "other.json", {"a": 1})
    assert mode(tmp_path / "m" / MODEL_FILE) == mode(tmp_path / "m" / INFO_FILE) == mode(tmp_path / "other.json")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([MODEL_FILE, INFO_FILE])


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    (tmp_path / "keep.json").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "keep.json") as temp:
            temp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert (tmp_path / "keep.json").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]


def test_can_write_tries_a_real_write_where_the_folder_would_be_made(tmp_path):
    assert can_write(tmp_path / "not" / "yet")
    (tmp_path / "file").write_text("x")
    assert not can_write(tmp_path / "file" / "below")  # under a file no folder can be made
    if os.geteuid() != 0:  # root writes anywhere, whatever the bits say
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert not can_write(locked)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_folders_written_before_markers_are_still_swapgraphs(tmp_path):
    """A PNG sequence whose frames carry swapgraph's text chunk, and a faceset whose
    faceset.json swapgraph wrote, from before folders were marked: replaceable; the same
    folder with a user's file in it is not."""
    import json

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from swapgraph.runtime.files import replace_problem

    seq = tmp_path / "seq"
    seq.mkdir()
    meta = PngInfo()
    meta.add_text("generator", "swapgraph 0.1.0")
    for i in range(3):
        Image.new("RGB", (4, 4)).save(seq / f"{i:06d}.png", pnginfo=meta)
    assert replace_problem(seq, "folder") is None
    Image.new("RGB", (4, 4)).save(seq / "mine.png")  # a PNG of the user's: the folder is theirs again
    assert "swapgraph did not make" in replace_problem(seq, "folder")

    faces = tmp_path / "faces"
    faces.mkdir()
    (faces / "faceset.json").write_text(json.dumps({"generator": "swapgraph 0.1.0", "faces": 1}))
    (faces / "faces.jsonl").write_text(json.dumps({"file": "a.png"}) + "\n")
    (faces / "a.png").write_bytes(b"crop")
    assert replace_problem(faces, "folder") is None
    (faces / "notes.txt").write_text("mine")
    assert replace_problem(faces, "folder") is not None
