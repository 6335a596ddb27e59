"""The node base class: one declarative schema per node type.

A node class declares its typed input and output ports, its params (a pydantic model
with defaults, ranges, choices and descriptions), the devices it supports and how many
earlier frames it needs (pre-roll); its docstring is what ``swapgraph nodes`` shows.
The work itself lives in plain tensor functions in the same family module, which tests
call directly; ``process`` only unpacks ports and calls them.
"""

from __future__ import annotations

import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Iterator, Literal, Mapping

import torch
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from .files import Kind, Publication
from .ports import PortType

Device = Literal["cpu", "cuda"]


class PathRole:
    """Marks a path param as a file the node reads (``input``) or writes (``output``).

    Relative values resolve against the graph file's folder; ``validate`` checks that
    inputs are readable, outputs writable, and that no output overwrites an input.
    """

    def __init__(self, role: Literal["input", "output"]) -> None:
        self.role = role

    def __repr__(self) -> str:
        return f"PathRole({self.role!r})"


InputPath = Annotated[Path, PathRole("input")]
OutputPath = Annotated[Path, PathRole("output")]


def _is_number(annotation: Any) -> bool:
    """Whether a param's type is a number: ``int``, ``float``, or an optional one."""
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(a in (int, float) for a in typing.get_args(annotation))
    return False


class Params(BaseModel):
    """Base of node params: unknown params are errors, values are checked on assignment.

    Stricter than pydantic's defaults where a lax value would silently become another:
    a boolean is not a number (``"crf": true`` is not crf 1), a float param takes no NaN
    or infinity, and a path holds no NUL character (no file system takes one).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_values(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        if isinstance(value, bool) and _is_number(cls.model_fields[name].annotation):
            raise ValueError("a number is expected, not a boolean")
        if isinstance(value, (str, Path)) and "\0" in str(value) and name in cls.path_fields():
            raise ValueError("a path cannot hold a NUL character")
        return value

    @classmethod
    def path_fields(cls) -> dict[str, str]:
        """``{param name: "input" | "output"}`` for the params that are file paths."""
        found = {}
        for name, info in cls.model_fields.items():
            for meta in info.metadata:
                if isinstance(meta, PathRole):
                    found[name] = meta.role
        return found


class NoParams(Params):
    pass


@dataclass(frozen=True)
class Port:
    """A typed port. ``type`` is a :class:`PortType` subclass, never a string."""

    type: type[PortType]
    doc: str = ""
    required: bool = True


@dataclass(frozen=True)
class NodeSchema:
    """Everything about a node type in one place."""

    inputs: Mapping[str, Port] = field(default_factory=dict)
    outputs: Mapping[str, Port] = field(default_factory=dict)
    params: type[Params] = NoParams
    devices: tuple[Device, ...] = ("cpu", "cuda")
    category: str = "misc"
    #: earlier frames the node must see before the first frame it outputs (stateful nodes);
    #: a node whose pre-roll depends on its params overrides :meth:`Node.preroll`
    preroll: int = 0


@dataclass(frozen=True)
class Issue:
    """One problem found before running: where, what was expected and found, the fix."""

    where: str
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}" + (f"; fix: {self.fix}" if self.fix else "")


@dataclass
class RunContext:
    """What a run tells its nodes: the frame range, batch size, graph identity, cancel flag."""

    #: the frames the run's sinks write (A, B inclusive; B None = to the end); None = the sources' own
    frame_range: tuple[int, int | None] | None = None
    batch_size: int = 8
    #: frames before the first output frame that sources must also emit, so that stateful
    #: nodes are warmed up (the graph's longest pre-roll path; see ``Graph.preroll``)
    preroll: int = 0
    #: CPU cores this run may use for its own worker pools (a farm worker gets its share)
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    graph_hash: str = ""
    graph_name: str = ""
    graph_path: Path | None = None
    #: filled by the executor before sinks commit: per-node seconds, counts, params
    summary: dict[str, Any] = field(default_factory=dict)
    #: where sinks stage their outputs in ``commit``; the executor renames them all together
    publication: Publication = field(default_factory=Publication)


def parse_frame_range(text: str) -> tuple[int, int | None]:
    """``"10-20"`` -> (10, 20) inclusive; ``"10-"`` -> (10, None); ``"7"`` -> (7, 7).

    The form of ``RunContext.frame_range``, from ``--frames`` or a source's param.
    """
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d*)\s*)?", text)
    if not m:
        raise ValueError(f"frame range {text!r}: expected A-B (inclusive, 0-based), e.g. 0-99 or 100-")
    a = int(m.group(1))
    b = m.group(2)
    end = a if b is None else (int(b) if b else None)
    if end is not None and end < a:
        raise ValueError(f"frame range {text!r}: the end comes before the start")
    return a, end


class Node:
    """Base of every node type. The class name is the graph ``type``.

    Life cycle in a run: ``open`` once, ``process`` once per batch in frame order,
    ``finish`` after the last batch; then ``commit`` when the whole run succeeded, or
    ``abort`` when it failed or was cancelled (sinks delete what they wrote).
    """

    schema: ClassVar[NodeSchema] = NodeSchema()

    def __init__(self, node_id: str, params: Params, device: torch.device) -> None:
        self.id = node_id
        self.params = params
        self.device = device

    # --- what the scheduler must know ----------------------------------------------
    @classmethod
    def preroll(cls, params: Params) -> int:
        """Earlier frames this node must see to output frame n exactly as a whole run would.

        The contract of a stateful node: its output for frame n depends only on its inputs
        for frames n - preroll .. n, so a run that starts ``preroll`` frames early leaves
        no trace of where it started (chunks on a farm join seamlessly).
        """
        return cls.schema.preroll

    def range_issues(self) -> list[Issue]:
        """Why this node's output would depend on where a run starts (for ``render``):
        a state its pre-roll cannot rebuild, such as a scale measured on the first frames."""
        return []

    # --- checks before any work -------------------------------------------------
    def check(self, connected: set[str]) -> list[Issue]:
        """Problems ``validate`` can find without running (probe files, param combos).

        ``connected`` names the input ports that have a link.
        """
        return []

    def input_paths(self) -> list[Path]:
        return [Path(getattr(self.params, n)) for n, r in self.params.path_fields().items()
                if r == "input" and getattr(self.params, n) is not None]

    def output_paths(self) -> list[Path]:
        return [Path(getattr(self.params, n)) for n, r in self.params.path_fields().items()
                if r == "output" and getattr(self.params, n) is not None]

    @classmethod
    def output_kind(cls, params: Params, name: str) -> Kind:
        """Whether output path param ``name`` names a file or a folder with these params
        (``validate`` refuses the wrong kind, or anything swapgraph did not make, there)."""
        return "file"

    @classmethod
    def extra_outputs(cls, params: Params, name: str) -> list[Path]:
        """Files written beside output path param ``name`` (a sidecar, a plot), checked
        and locked with it."""
        return []

    # --- run ------------------------------------------------------------------------
    def open(self, ctx: RunContext) -> None:
        """Called once before the first batch."""

    def process(self, **inputs: Any) -> dict[str, Any]:
        """One batch in, one batch out: ``{output port: value}``."""
        raise NotImplementedError(f"{type(self).__name__}.process")

    def finish(self) -> None:
        """After the last batch (flush encoders); nothing final is written yet."""

    def commit(self, ctx: RunContext) -> None:
        """The whole run succeeded: complete the outputs at their temporary names and stage
        each in ``ctx.publication``; the executor renames every sink's together."""

    def abort(self) -> None:
        """The run failed or was cancelled: remove anything this node wrote."""

    def stats(self) -> dict[str, Any]:
        """Counts for the run summary and sidecar."""
        return {}

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    @classmethod
    def doc(cls) -> str:
        return (cls.__doc__ or "").strip()


class Source(Node):
    """A node with no inputs that emits batches of consecutive frames."""

    def frame_count(self, ctx: RunContext) -> int | None:
        """How many frames of ``output_range`` there are (for progress)."""
        return None

    def output_range(self, ctx: RunContext) -> tuple[int, int | None] | None:
        """The frames the run's sinks get (inclusive). ``batches`` may emit more around them,
        earlier for the stateful nodes' pre-roll (``ctx.preroll``) and out to whole batches;
        the executor gives sinks only these. None: everything the source emits."""
        return ctx.frame_range

    def batches(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__}.batches")


class Sink(Node):
    """A node with no outputs that writes files.

    A sink whose output a farm can render in frame-range chunks and join says how:

    - what a chunk writes: ``chunk_param`` names the param that holds the output path; a
      chunk sets it to a file of its own, the join writes the render's output there.
      ``chunk_record`` (after ``commit``) says what the run wrote: the frames, the files,
      and whatever the join needs, as JSON data; the farm adds the files' hashes.
    - what must match between chunks: the graph and every param but ``chunk_param``, the
      batch size and the device (the farm's render key), and what ``join_chunks`` checks
      in the records (a container, a codec). ``chunk_refusal`` refuses params whose output
      cannot be joined.
    - how chunks are joined: ``join_chunks``, given the chunks' manifests in frame order,
      contiguous, their files checked.

    A sink without ``chunk_param`` is refused by a render: its files cannot be split.
    """

    #: the param holding this sink's output path; None: its output cannot be rendered in chunks
    chunk_param: ClassVar[str | None] = None

    def chunk_refusal(self) -> str | None:
        """Why these params' output cannot be joined from chunks; None when it can."""
        if self.chunk_param is None:
            return "its output cannot be written in frame-range chunks and joined"
        return None

    def chunk_record(self) -> dict[str, Any]:
        """After ``commit``: ``{"frames": [first, last], "files": [paths], ...}``, JSON data
        for the chunk's manifest, read back by ``join_chunks``."""
        raise NotImplementedError(f"{type(self).__name__}.chunk_record")

    @classmethod
    def join_chunks(cls, chunks: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        """Join chunks into ``out``, whole or not at all, with its sidecar. ``chunks``: the
        manifests (``frames``, ``files`` as absolute paths and their ``sha256``, ``record``: what ``chunk_record``
        returned, and the run's provenance: ``graph_hash``, ``graph``, ``node``, ``params``,
        ``devices``, ``preroll``, ``batch_size``, ``render_key``, ``host``, ``seconds``).
        Returns at least ``frames`` and ``output``."""
        raise NotImplementedError(f"{cls.__name__}.join_chunks")

