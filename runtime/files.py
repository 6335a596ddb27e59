"""Outputs written whole or not at all, that replace only what swapgraph made.

The rules every writer of swapgraph follows, decided here and nowhere else:

- **Whole or not at all.** A file is written to a temporary name beside its target (same
  folder, so the rename is atomic; same suffix, so muxers and image writers pick the
  format), unique to the run, and renamed into place when complete. A run with several
  outputs stages them all and renames them together (:class:`Publication`): when one
  rename fails, those already made are rolled back.
- **Replace only what swapgraph made.** A final path that exists may be replaced only when
  it is an earlier output of swapgraph of the same kind (:func:`replace_problem`): a
  video with its sidecar or swapgraph's container tag, a PNG with swapgraph's text
  chunk, a folder whose marker lists every entry in it. Anything else (a user's folder,
  a plate, a file where a folder is meant) is refused before anything runs.
- **One writer per output.** A run holds an exclusive lock file beside each final path
  (:class:`OutputLocks`); a second run writing the same output is refused at once, naming
  the first; the lock of a process that died is taken over.
- **The umask's mode.** ``publish`` gives a file the mode an ordinary ``open`` would have
  (0644 under the usual umask): some writers create 0600 files, which farm workers running
  as another user could not read on shared storage.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from . import interrupts
from .errors import Cancelled, OutputError

#: the marker inside a folder swapgraph made: which files it wrote there
FOLDER_MARKER = ".swapgraph-output.json"
#: the suffix of a sidecar beside an output (see ``provenance.sidecar_path``)
SIDECAR_SUFFIX = ".swapgraph.json"
#: how a PNG swapgraph wrote says so (a tEXt chunk before the image data)
PNG_SOFTWARE_KEY = "Software"
GENERATOR_PREFIX = "swapgraph"

Kind = Literal["file", "folder"]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: umask() is process-wide, reading it twice a run would race


def file_mode() -> int:
    """The mode a new file gets from ``open`` under this process's umask (0644 under 022)."""
    return 0o666 & ~_UMASK


def run_token() -> str:
    """A name part unique to one writer: the process and a random tag (two runs of one
    process, such as an editor's server, never share a temporary name)."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def temp_path_for(final: Path) -> Path:
    """A temporary name beside ``final``: hidden, unique to this call, same suffix."""
    final = Path(final)
    return final.with_name(f".{final.stem}.partial-{run_token()}{final.suffix}")


def remove(path: Path) -> None:
    """Delete a temporary file or folder this run made, if it is there. Only for
    temporaries (``temp_path_for`` names); outputs are replaced through ``publish``."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# --- what swapgraph made -------------------------------------------------------------

def write_folder_marker(folder: Path, kind: str, files: Iterable[str] | None = None) -> None:
    """Mark ``folder`` as swapgraph's: its kind (faceset, png-sequence, model, chunks, ...)
    and the entries it wrote there (None: a folder whose entries swapgraph's own records
    name, such as a render's chunks)."""
    doc = {"generator": f"{GENERATOR_PREFIX}", "kind": kind,
           "files": None if files is None else sorted(set(files) - {FOLDER_MARKER})}
    (Path(folder) / FOLDER_MARKER).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def _json_object(path: Path, limit: int = 64 << 20) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing, larger than ``limit`` bytes, not
    JSON, or not an object."""
    try:
        if path.stat().st_size > limit:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _generated(doc: dict[str, Any] | None) -> bool:
    return doc is not None and str(doc.get("generator", "")).startswith(GENERATOR_PREFIX)


def folder_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of a folder swapgraph made, or None."""
    doc = _json_object(Path(folder) / FOLDER_MARKER)
    return doc if _generated(doc) else None


def _sidecar_names(path: Path) -> bool:
    doc = _json_object(path.with_name(path.name + SIDECAR_SUFFIX), 16 << 20)
    return doc is not None and doc.get("synthetic_media") is True and Path(str(doc.get("output", ""))).name == path.name


def _png_is_ours(path: Path) -> bool:
    try:
        from PIL import Image

        with Image.open(path) as image:
            # "generator": what PNG frames carried before the Software chunk
            return image.format == "PNG" and any(str(image.info.get(key, "")).startswith(GENERATOR_PREFIX)
                                                 for key in (PNG_SOFTWARE_KEY, "generator"))
    except Exception:  # not an image at all: not ours
        return False


def _video_is_ours(path: Path) -> bool:
    try:
        import av

        with av.open(str(path)) as c:
            tags = {k.lower(): str(v) for k, v in c.metadata.items()}
    except Exception:  # not media: not ours
        return False
    return tags.get("synthetic_media", "").lower() == "true" and any(
        tags.get(k, "").startswith(GENERATOR_PREFIX) for k in ("generator", "encoded_by"))


def _json_is_ours(path: Path) -> bool:
    return _generated(_json_object(path))


def made_by_swapgraph(path: Path, kind: Kind) -> bool:
    """Whether ``path`` is an output swapgraph wrote, of ``kind``.

    A folder: its marker lists every entry in it (a folder where a user added a file is
    theirs again). A file: a sidecar beside it naming it, swapgraph's tag in its container
    (videos) or text chunk (PNG), or a JSON document whose ``generator`` is swapgraph.
    """
    path = Path(path)
    if path.is_symlink():
        return False
    if kind == "folder":
        if not path.is_dir():
            return False
        marker = folder_marker(path)
        if marker is None:
            return _unmarked_folder_is_ours(path)
        listed = marker.get("files")
        if listed is None:
            return True
        return {p.name for p in path.iterdir()} - {FOLDER_MARKER} <= set(listed)
    if not path.is_file():
        return False
    if _sidecar_names(path):
        return True
    suffix = path.suffix.lower()
    if suffix == ".png":
        return _png_is_ours(path)
    if suffix == ".json":
        return _json_is_ours(path)
    if suffix in (".mp4", ".m4v", ".mov", ".mkv"):
        return _video_is_ours(path)
    return False


def _unmarked_folder_is_ours(folder: Path) -> bool:
    """A folder swapgraph wrote before folders were marked: a faceset (``faceset.json`` whose
    generator is swapgraph, and every other entry a crop its ``faces.jsonl`` names) or a PNG
    sequence (every entry a PNG swapgraph wrote)."""
    names = {p.name for p in folder.iterdir()}
    if not names:
        return False
    if {"faceset.json", "faces.jsonl"} <= names and _json_is_ours(folder / "faceset.json"):
        try:
            with (folder / "faces.jsonl").open(encoding="utf-8") as f:
                crops = {json.loads(line).get("file") for line in f if line.strip()}
        except (OSError, ValueError, AttributeError, RecursionError):
            return False
        return names - {"faceset.json", "faces.jsonl"} <= crops
    return all(name.endswith(".png") and _png_is_ours(folder / name) for name in names)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def replace_problem(path: Path, kind: Kind, *, inputs: Iterable[Path] = ()) -> str | None:
    """Why swapgraph may not write ``path`` (a ``kind`` output), or None when it may.

    It may when nothing is there, or when what is there is swapgraph's own earlier output
    of that kind. Refused: anything else at the path, a path inside one of ``inputs``, an
    input inside the path, a path whose parent is a file. The text names the path and the
    fix, ready for an error line: "PROBLEM; FIX".
    """
    path = Path(path)
    absolute = Path(os.path.abspath(path))
    for parent in absolute.parents:
        if parent.exists() and not parent.is_dir():
            return f"{path}: {parent} is a file, not a folder; choose another path"
    for given in inputs:
        source = Path(os.path.abspath(given))
        if absolute == source:
            return f"{path} is also an input; swapgraph never overwrites its inputs: write the output to a new path"
        if _inside(absolute, source):
            return f"{path} is inside the input {given}; write the output outside it"
        if _inside(source, absolute):
            return f"{path} holds the input {given}, which writing there would replace; write the output to a new path"
    if not os.path.lexists(path):
        return None
    if kind == "file" and path.is_dir() and not path.is_symlink():
        return (f"{path} is a folder, and a file is to be written there; choose another path (swapgraph never "
                "replaces a folder it did not make)")
    if kind == "folder" and not path.is_dir():
        return (f"{path} is a file, and a folder is to be written there; choose another path (or delete the file "
                "yourself)")
    if made_by_swapgraph(path, kind):
        return None
    if kind == "folder":
        marker = folder_marker(path)
        if marker is not None:
            extra = sorted({p.name for p in path.iterdir()} - {FOLDER_MARKER} - set(marker.get("files") or ()))
            return (f"{path} holds {extra[0]!r}{f' and {len(extra) - 1} more' if len(extra) > 1 else ''}, which "
                    "swapgraph did not write there; choose another path, or move those files out yourself")
        return (f"{path} is a folder swapgraph did not make; choose another path (or delete it yourself)")
    return f"{path} exists and swapgraph did not write it; choose another path (or delete it yourself)"


def check_replaceable(path: Path, kind: Kind, *, what: str, inputs: Iterable[Path] = ()) -> None:
    """``replace_problem`` as an error: OutputError naming ``what`` (a flag, a node's param)."""
    problem = replace_problem(path, kind, inputs=inputs)
    if problem is not None:
        raise OutputError(f"{what}: {problem}")


# --- one writer per output -------------------------------------------------------------

def lock_path_for(final: Path) -> Path:
    final = Path(final)
    return final.with_name(f".{final.name}.swapgraph-lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class OutputLocks:
    """Exclusive locks on final paths for one run: an O_EXCL lock file beside each, holding
    the owner's host, pid and command. A lock whose process is gone (same host) is stale and
    taken over. Use as a context manager; released when the block ends."""

    paths: list[Path]
    what: str = "the output"
    held: list[Path] = field(default_factory=list)

    def __enter__(self) -> "OutputLocks":
        try:
            for path in self.paths:
                self._take(Path(path))
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def _take(self, final: Path) -> None:
        lock = lock_path_for(final)
        lock.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
              "command": " ".join(sys.argv[:3]) or "python"}
        for _ in range(3):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self._owner(lock)
                if other is not None and other.get("host") == me["host"] and isinstance(other.get("pid"), int) \
                        and not _alive(other["pid"]):
                    lock.unlink(missing_ok=True)  # its process died: the lock is stale
                    continue
                if other is None and time.time() - _mtime(lock) > 5:
                    lock.unlink(missing_ok=True)  # an empty or broken lock a crash left behind
                    continue
                who = (f"process {other.get('pid')} on {other.get('host')} ({other.get('command')})"
                       if other else "another run")
                raise OutputError(f"{final}: {who} is writing this output now; wait for it to finish, or choose "
                                  f"another path (if no run is writing it, delete {lock})")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            self.held.append(lock)
            return
        raise OutputError(f"{final}: could not lock it ({lock} keeps coming back); delete it and retry")

    @staticmethod
    def _owner(lock: Path) -> dict[str, Any] | None:
        try:
            doc = json.loads(lock.read_text(encoding="utf-8"))
            return doc if isinstance(doc, dict) else None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        for lock in self.held:
            lock.unlink(missing_ok=True)
        self.held.clear()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# --- publishing ----------------------------------------------------------------------

def _prepare(temp: Path) -> None:
    if temp.is_file():
        os.chmod(temp, file_mode())


def publish(temp: Path, final: Path) -> None:
    """Rename a complete ``temp`` (a file, or a folder such as a faceset) to ``final``.

    Commands check what stands at their outputs before they start (``replace_problem``);
    here, the last guard: a folder swapgraph did not make is never replaced. A file gets
    the umask's mode first."""
    with Publication() as pub:
        pub.stage(temp, final)


class Publication:
    """Outputs staged at temporary names, renamed into place together.

    ``stage(temp, final)`` for each; ``commit()`` renames them all (what stood at a final
    path, swapgraph's own earlier output, is moved aside first and deleted only when every
    rename succeeded); when a rename fails, those already made are undone and the old
    outputs put back. As a context manager it commits when the block succeeds.
    """

    def __init__(self) -> None:
        self.staged: list[tuple[Path, Path]] = []
        self.published: list[Path] = []

    def __enter__(self) -> "Publication":
        return self

    def __exit__(self, exc_type, *exc: Any) -> None:
        if exc_type is None:
            self.commit()

    def stage(self, temp: Path, final: Path) -> None:
        self.staged.append((Path(temp), Path(final)))

    def commit(self) -> list[Path]:
        """Rename every staged output into place, or none. Ctrl-C and SIGTERM wait for the
        renames; one that came meanwhile is raised afterwards as Cancelled naming what was
        written (inside an outer ``interrupts.held``, the outer block gets it instead)."""
        with interrupts.held() as held:
            published = self._rename_all()
        if held.signal is not None:
            raise Cancelled("cancelled as it finished; written whole: " + ", ".join(map(str, published)))
        return published

    def _rename_all(self) -> list[Path]:
        done: list[tuple[Path, Path, Path | None]] = []  # (temp, final, the old output moved aside)
        try:
            for temp, final in self.staged:
                if final.is_dir() and not final.is_symlink() and not made_by_swapgraph(final, "folder"):
                    # the last guard: writers check before they start (replace_problem)
                    raise OutputError(replace_problem(final, "folder") or f"{final}: a folder swapgraph did not make")
                _prepare(temp)
                aside = None
                if os.path.lexists(final):
                    aside = final.with_name(f".{final.name}.replaced-{run_token()}")
                    os.replace(final, aside)
                try:
                    os.replace(temp, final)
                except BaseException:
                    if aside is not None:
                        os.replace(aside, final)
                    raise
                done.append((temp, final, aside))
        except BaseException:
            for temp, final, aside in reversed(done):
                with contextlib.suppress(OSError):
                    os.replace(final, temp)  # back to its temporary name: the writer's abort removes it
                    if aside is not None:
                        os.replace(aside, final)
            raise
        for _, _, aside in done:
            if aside is not None:
                remove(aside)
        self.published = [final for _, final, _ in done]
        self.staged.clear()
        return self.published


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
    """Standard JSON (indented, one trailing newline) written whole or not at all."""
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
