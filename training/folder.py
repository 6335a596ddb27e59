"""The model folder a run writes: swapgraph's own, never a user's, and no model in it lost by accident.

- **The trainer's folder.** Its marker (``runtime.files.write_folder_marker``, kind ``model``)
  lists every top-level entry the trainer wrote there; each name is added to it before the
  entry is made, so a kill at any moment leaves a folder the next run recognises. The
  temporaries a kill -9 can leave beside those entries (``runtime.files``'
  ``.NAME.partial-…`` and ``.NAME.replaced-…``) are the trainer's too: swept when the next
  run starts.
- **Nobody else's files.** A folder holding an entry the marker does not list (or any
  entry, without a marker) is refused, even with ``force``: the trainer never replaces, nor
  deletes, a file it did not write. An empty folder is as good as none; a file at ``out``,
  or an ``out`` that is, holds or lies inside a faceset, is refused.
- **No model lost by accident.** A folder holding a model or a checkpoint takes ``resume``
  (continue it) or ``force`` (replace it); without either it is refused. ``force`` clears
  the earlier run's entries, keeping its model until the new run's first save replaces it;
  inside ``previews`` and ``checkpoint`` only the trainer's own file names are removed.
  An earlier run that left neither (killed before its first checkpoint) is replaced freely.
- **One run at a time.** A run holds ``OutputLocks([out])`` for its length; :func:`check_not_busy`
  refuses a second run at once, before it loads anything.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable

from swapgraph.nodes.swap_model import INFO_FILE, MODEL_FILE
from swapgraph.runtime.errors import OutputError
from swapgraph.runtime.files import FOLDER_MARKER, OutputLocks, folder_marker, replace_problem, write_folder_marker

from .checkpoints import CHECKPOINT_DIR, CHECKPOINT_FILE
from .config import LOG_FILE, NamesSettings

MARKER_KIND = "model"
PLOT_FILE = "loss.png"
PREVIEW_FILE = "preview.png"
PREVIEWS_DIR = "previews"
#: the entries that make a folder a trained model (or one to resume)
MODEL_ENTRIES = frozenset({MODEL_FILE, INFO_FILE, CHECKPOINT_DIR})
#: every top-level entry the trainer writes (what a folder trained before markers holds)
TRAINER_ENTRIES = MODEL_ENTRIES | {LOG_FILE, PLOT_FILE, PREVIEW_FILE, PREVIEWS_DIR}
#: what the trainer writes inside its two subfolders (anything else there is left alone)
_OWN_INSIDE = {PREVIEWS_DIR: re.compile(r"step_\d+\.png"), CHECKPOINT_DIR: re.compile(re.escape(CHECKPOINT_FILE))}
# runtime.files' temporary names: temp_path_for (".model.partial-PID-TAG.json") and Publication's
# aside (".model.json.replaced-PID-TAG")
_PARTIAL = re.compile(r"\.(?P<stem>.+)\.partial-\d+-[0-9a-f]+(?P<suffix>\.[^.]+)?")
_ASIDE = re.compile(r"\.(?P<name>.+)\.replaced-\d+-[0-9a-f]+")


class ModelFolderError(NamesSettings, OutputError):
    """An ``out`` the trainer may not write: a user's files there, or a model to keep."""


def temporary_of(name: str) -> str | None:
    """The final name a temporary of ``runtime.files`` stands for, or None for any other name."""
    if m := _PARTIAL.fullmatch(name):
        return m["stem"] + (m["suffix"] or "")
    if m := _ASIDE.fullmatch(name):
        return m["name"]
    return None


def _listed(name: str, listed: set[str]) -> bool:
    """Whether the top-level entry ``name`` (or the entry a temporary stands for) is in ``listed``."""
    return (temporary_of(name) or name) in listed


def _own_inside(name: str, own: re.Pattern[str]) -> bool:
    """Whether ``name`` in one of the trainer's subfolders is the trainer's (or its temporary)."""
    return bool(own.fullmatch(temporary_of(name) or name))


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def check_not_busy(out: Path) -> None:
    """OutputError at once when another run holds ``out``'s lock, naming it. The run takes the
    lock itself only once every check passed: a lock makes its parent folders, and a refused
    run leaves nothing behind."""
    if Path(out).parent.is_dir():
        with OutputLocks([Path(out)], what="out"):
            pass


def check_model_folder(out: Path, inputs: Iterable[Path], *, resume: bool, force: bool) -> None:
    """Refuse an ``out`` this run may not write (see the module docstring); writes nothing."""
    out = Path(out)
    problem = replace_problem(out, "folder", inputs=inputs)
    if problem is not None and (not _real_dir(out) or problem != replace_problem(out, "folder")):
        raise OutputError(problem)  # a file at out, an input in the way, a parent that is a file
    if not _real_dir(out):
        return  # nothing there yet
    names = {p.name for p in out.iterdir()} - {FOLDER_MARKER}
    marker = folder_marker(out)
    if marker is not None and marker.get("kind") != MARKER_KIND:
        raise ModelFolderError.spelled(lambda s: f"{out}: a {marker.get('kind')} folder swapgraph made, not a model "
                                                 f"folder; choose another {s('out')}")
    listed = set(marker.get("files") or ()) if marker else legacy_entries(out)
    foreign = sorted(n for n in names if not _listed(n, listed))
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise ModelFolderError.spelled(lambda s: f"{out}: holds {foreign[0]!r}{more}, which swapgraph's trainer did "
                                                 f"not write; choose another {s('out')} (training never replaces "
                                                 "files it did not write)")
    held = names & MODEL_ENTRIES
    if resume and not (out / CHECKPOINT_DIR / CHECKPOINT_FILE).is_file() and held:
        raise ModelFolderError.spelled(lambda s: f"{out}: holds a model but no checkpoint, so training cannot "
                                                 f"continue it; {s('force', True)} to replace it, or another "
                                                 f"{s('out')}")
    if held and not resume and not force:
        what = "a trained model" if MODEL_FILE in held else "a checkpoint"
        raise ModelFolderError.spelled(lambda s: f"{out}: holds {what} of an earlier run; {s('resume', True)} to "
                                                 f"continue it, {s('force', True)} to replace it, or another "
                                                 f"{s('out')}")


def legacy_entries(out: Path) -> set[str]:
    """The entries of a model folder trained before folders were marked, when it is one:
    every entry has a name the trainer writes, and its ``model.json`` is there, in
    swapgraph's own format. Such a folder is taken as the trainer's (and marked on its next run); any other
    unmarked folder is nobody's to replace."""
    names = {p.name for p in out.iterdir()} if _real_dir(out) else set()
    if not names or not names <= TRAINER_ENTRIES or INFO_FILE not in names:
        return set()
    try:  # a model.json of swapgraph's own format, not a file of that name
        info = json.loads((out / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return set()
    return names if isinstance(info, dict) and info.get("format") == "swapgraph-model" else set()


class ModelFolder:
    """The trainer's writes to ``out``'s top level go through :meth:`mark` first."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        marker = folder_marker(self.out)
        self.written: set[str] = set(marker.get("files") or ()) if marker else legacy_entries(self.out)

    def prepare(self, *, resume: bool) -> None:
        """Make the folder ready for the run, under its lock and after :func:`check_model_folder`:
        sweep a killed run's temporaries; a new run clears the earlier run's entries (its model
        stays until this run's first save replaces it)."""
        self.out.mkdir(parents=True, exist_ok=True)
        for path in list(self.out.iterdir()):
            if temporary_of(path.name) in self.written:
                _remove_file(path)
        for name, own in _OWN_INSIDE.items():
            if name in self.written and _real_dir(self.out / name):
                for inner in list((self.out / name).iterdir()):
                    if temporary_of(inner.name) is not None and _own_inside(inner.name, own):
                        _remove_file(inner)
        if not resume:
            for name in sorted(self.written - {MODEL_FILE, INFO_FILE}):
                self._clear(self.out / name)
        self.written = {p.name for p in self.out.iterdir()} - {FOLDER_MARKER}
        write_folder_marker(self.out, MARKER_KIND, self.written)

    def mark(self, *names: str) -> None:
        """List ``names`` in the marker before they are written."""
        new = set(names) - self.written
        if new:
            self.written |= new
            write_folder_marker(self.out, MARKER_KIND, self.written)

    @staticmethod
    def _clear(path: Path) -> None:
        if not _real_dir(path):
            _remove_file(path)
            return
        own = _OWN_INSIDE.get(path.name)
        for inner in list(path.iterdir()):
            if own is not None and inner.is_file() and _own_inside(inner.name, own):
                _remove_file(inner)
        try:
            path.rmdir()
        except OSError:  # a file the trainer did not write is in there: it stays, and so does the folder
            pass


def _remove_file(path: Path) -> None:
    if os.path.lexists(path) and not _real_dir(path):
        path.unlink()
