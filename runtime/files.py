"""Outputs written whole or not at all, with the permissions the user's umask gives.

Every file swapgraph writes goes to a temporary name beside its target (same folder, so the
rename is atomic; same suffix, so muxers and image writers pick the format) and is renamed
into place when complete: an interrupted run leaves no half-written file under the final
name. ``publish`` also gives the file the mode an ordinary ``open`` would have (0644 under
the usual umask): some writers create 0600 files, which farm workers running as another
user could not read on shared storage.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: umask() is process-wide, reading it twice a run would race


def file_mode() -> int:
    """The mode a new file gets from ``open`` under this process's umask (0644 under 022)."""
    return 0o666 & ~_UMASK


def temp_path_for(final: Path) -> Path:
    """A temporary name beside ``final``: hidden, tagged with the process, same suffix."""
    final = Path(final)
    return final.with_name(f".{final.stem}.partial-{os.getpid()}{final.suffix}")


def remove(path: Path) -> None:
    """Delete a file or a folder if it is there."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def publish(temp: Path, final: Path) -> None:
    """Rename a complete ``temp`` (a file, or a folder such as a faceset) to ``final``,
    replacing what is there; a file gets the umask's mode first."""
    temp, final = Path(temp), Path(final)
    if temp.is_file():
        os.chmod(temp, file_mode())
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    os.replace(temp, final)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write ``final`` to; published when the block succeeds,
    removed when it raises."""
    temp = temp_path_for(final)
    try:
        yield temp
        publish(temp, final)
    finally:
        remove(temp)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (indented, one trailing newline) written whole or not at all."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (where a new output's folders would start)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def can_write(folder: Path) -> bool:
    """Whether files can be created in ``folder``, or, when it does not exist yet, in the
    closest existing ancestor (where it would be made). A real write is tried: permission
    bits say nothing for root, nor on read-only and special file systems."""
    probe = nearest_existing(Path(folder))
    if not probe.is_dir():
        return False
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".swapgraph-write-test-"):
            return True
    except OSError:
        return False
