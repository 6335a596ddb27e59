"""One exception hierarchy for swapgraph.

User errors (a bad graph, a bad param, unreadable media) reach the CLI as one line with
exit code 2; failures while running exit 1. Each class also subclasses the matching
builtin, so callers that catch ``ValueError`` or ``TypeError`` keep working. An unknown
name (node type, param, port, node id) gets its fix from ``did_you_mean``.
"""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """The fix for an unknown name: ``"did you mean 'crf'?"`` naming the closest of
    ``choices``, or "" when none is close enough to guess."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"did you mean {close[0]!r}?" if close else ""


def did_you_mean_or_list(name: str, choices: Iterable[str]) -> str:
    """``did_you_mean``, else ``"choose one of: 'a', 'b'"`` listing every choice ("" when none)."""
    choices = list(choices)
    if not choices:
        return ""
    return did_you_mean(name, choices) or "choose one of: " + ", ".join(map(repr, choices))


class SwapgraphError(Exception):
    """Base of every error swapgraph raises on purpose."""

    #: exit code the CLI uses for this error
    exit_code: int = 2


class UsageError(SwapgraphError, ValueError):
    """A command line that cannot be carried out (bad flag value, missing file)."""


class GraphError(SwapgraphError):
    """A graph file that cannot be run."""


class GraphFileError(GraphError, ValueError):
    """The graph file is not valid JSON or not a graph file."""


class GraphValidationError(GraphError, ValueError):
    """One or more problems found by ``validate``; ``issues`` lists them all."""

    def __init__(self, issues: list) -> None:
        self.issues = list(issues)
        n = len(self.issues)
        head = f"{n} problem{'s' if n != 1 else ''} in graph"
        super().__init__(head + ":\n" + "\n".join(f"  {i}" for i in self.issues))


class GraphTypeError(GraphError, TypeError):
    """A link joins ports of incompatible types."""


class ParamError(GraphError, ValueError):
    """A node param (or a ``--set`` override) has a bad type, range or choice."""


class RegistryError(SwapgraphError, LookupError):
    """A node type is unknown, or two packages declare the same node type."""


class MediaError(SwapgraphError, OSError):
    """A media file that cannot be read or written."""


class OutputError(SwapgraphError, OSError):
    """An output path swapgraph may not write: something it did not make stands there, an
    input is in the way, or another run is writing it. Refused before anything runs."""


class NodeError(SwapgraphError, RuntimeError):
    """A node failed while running; names the node and what to do."""

    exit_code = 1


class ShapeError(SwapgraphError, ValueError):
    """A tensor has the wrong shape; shows expected and actual."""

    exit_code = 1


class Cancelled(SwapgraphError):
    """The run was stopped: Ctrl-C, SIGTERM, or a ``CancelToken``."""

    exit_code = 130


class ArgumentError(UsageError):
    """A bad value for one argument of a call: a Python API keyword, which the CLI shows as
    its flag. Library code never spells a front end's syntax: ``str()`` reads
    ``chunk_size=0: expected ...``, and the CLI prints ``--chunk-size 0: expected ...``."""

    def __init__(self, argument: str, value: str, problem: str) -> None:
        self.argument, self.value, self.problem = argument, value, problem
        super().__init__(f"{argument}={value}: {problem}")

    def as_flag(self) -> str:
        """The message with the argument named as a command-line flag."""
        return f"--{self.argument.replace('_', '-')} {self.value}: {self.problem}"
