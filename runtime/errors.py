"""One exception hierarchy for swapgraph.

User errors (a bad graph, a bad param, unreadable media) reach the CLI as one line with
exit code 2; failures while running exit 1. Each class also subclasses the matching
builtin, so callers that catch ``ValueError`` or ``TypeError`` keep working.
"""

from __future__ import annotations


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


class NodeError(SwapgraphError, RuntimeError):
    """A node failed while running; names the node and what to do."""

    exit_code = 1


class ShapeError(SwapgraphError, ValueError):
    """A tensor has the wrong shape; shows expected and actual."""

    exit_code = 1


class Cancelled(SwapgraphError):
    """The run was stopped by Ctrl-C or SIGTERM."""

    exit_code = 130
