"""Where a command may write: the engine's rule (``runtime.files.replace_problem``) for
the outputs a front end names itself, as errors naming its argument."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal

from swapgraph.runtime import interrupts
from swapgraph.runtime.errors import ArgumentError
from swapgraph.runtime.files import replace_problem

from .graphs import GraphSpec, load


def graph_inputs(spec: GraphSpec | str | Path) -> list[Path]:
    """Every input path a graph reads (resolved), after validating it."""
    graph = load(spec).graph()
    return [Path(getattr(b.params, name)) for b in graph.nodes.values()
            for name, role in b.params.path_fields().items() if role == "input" and getattr(b.params, name) is not None]


def check_output(path: Path, kind: Literal["file", "folder"], *, argument: str, inputs: Iterable[Path] = ()) -> None:
    """Refuse (ArgumentError naming ``argument``) an output path swapgraph may not write:
    something it did not make stands there, or it holds or sits in one of ``inputs``."""
    problem = replace_problem(Path(path), kind, inputs=inputs)
    if problem is not None:
        raise ArgumentError(argument, str(path), problem)


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the calling program as KeyboardInterrupt, except while
    outputs are renamed into place (they finish first); what a command line installs."""
    interrupts.install()
