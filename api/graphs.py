"""Graphs as the Python API takes them: a document, where it came from, its overrides."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from swapgraph.runtime.errors import GraphValidationError
from swapgraph.runtime.files import write_text_atomic
from swapgraph.runtime.graph.load import load_graph_document
from swapgraph.runtime.graph.model import Graph
from swapgraph.runtime.graph.validate import validate_graph
from swapgraph.runtime.node import Issue
from swapgraph.runtime.registry import default_registry

Overrides = Sequence[str] | Mapping[str, Any]


@dataclass(frozen=True)
class GraphSpec:
    """A graph not yet validated: its document (JSON data), the file it came from (relative
    paths resolve against its folder; None: the working folder) and overrides
    (``"node.param=value"``, typed by the param's schema). Every call of the API takes one;
    ``with_params`` and ``with_overrides`` make edited copies, as an editor does."""

    document: Mapping[str, Any]
    path: Path | None = None
    overrides: tuple[str, ...] = field(default=())

    def graph(self, *, probe: bool = True) -> Graph:
        """The validated graph; raises ``GraphValidationError`` with every problem at once.
        ``probe`` also opens input media."""
        return validate_graph(self.document, default_registry(), path=self.path, overrides=list(self.overrides),
                              probe=probe)

    def nodes_of_type(self, type_name: str) -> list[str]:
        """The ids of the document's nodes of type ``type_name``, in file order (read from the
        document: nothing is validated, no file is opened)."""
        nodes = self.document.get("nodes") or {}
        return [nid for nid, n in nodes.items() if isinstance(n, Mapping) and n.get("type") == type_name]

    def with_overrides(self, overrides: Overrides) -> GraphSpec:
        return replace(self, overrides=(*self.overrides, *_override_texts(overrides)))

    def with_params(self, node: str, **params: Any) -> GraphSpec:
        """A copy whose document gives ``node`` these params (JSON values)."""
        doc = copy.deepcopy(dict(self.document))
        spec = doc.get("nodes", {}).get(node)
        if not isinstance(spec, dict):
            raise KeyError(f"no node {node!r} in the graph")
        spec.setdefault("params", {}).update(params)
        return replace(self, document=doc)


def _override_texts(overrides: Overrides) -> list[str]:
    if isinstance(overrides, Mapping):
        return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]
    return list(overrides)


def load(source: str | Path | Mapping[str, Any] | GraphSpec, overrides: Overrides = (), *,
         path: Path | None = None) -> GraphSpec:
    """A graph from a file (``str``/``Path``) or a document (a dict; ``path`` says where its
    relative paths resolve), with overrides: ``["plate.path=a.mp4"]`` or ``{"plate.path": "a.mp4"}``.
    Raises ``GraphFileError`` when the file is not a graph file."""
    if isinstance(source, GraphSpec):
        return source.with_overrides(overrides)
    if isinstance(source, Mapping):
        return GraphSpec(copy.deepcopy(dict(source)), Path(path) if path else None, tuple(_override_texts(overrides)))
    file = Path(source)
    return GraphSpec(load_graph_document(file), file, tuple(_override_texts(overrides)))


def validate(spec: GraphSpec | str | Path | Mapping[str, Any], *, probe: bool = True) -> list[Issue]:
    """Every problem of the graph (empty: it can run), found without running it."""
    try:
        load(spec).graph(probe=probe)
    except GraphValidationError as exc:
        return list(exc.issues)
    return []


def presets() -> dict[str, Path]:
    """The preset graphs installed with swapgraph (``graphs/*.json``), by file name."""
    import swapgraph.graphs

    found: dict[str, Path] = {}
    for folder in swapgraph.graphs.__path__:
        for file in sorted(Path(folder).glob("*.json")):
            found.setdefault(file.name, file)
    return found


def save_graph(document: Mapping[str, Any], path: Path) -> bool:
    """Write ``document`` to the graph file ``path`` (2-space indented JSON and a newline),
    whole or not at all; returns False, writing nothing, when the file already holds an
    equal document, so opening and saving a graph leaves its file byte for byte."""
    path = Path(path)
    try:
        if json.loads(path.read_text(encoding="utf-8")) == document:
            return False
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass  # no file yet, or not JSON: write it
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")
    return True


@dataclass(frozen=True)
class FileParam:
    """A path param of a node: where it points (resolved like a run resolves it) and whether
    the node reads or writes it."""

    node: str
    param: str
    role: Literal["input", "output"]
    path: Path


def file_params(spec: GraphSpec | str | Path | Mapping[str, Any]) -> list[FileParam]:
    """The files a graph's nodes read and write, relative paths resolved against the graph
    file's folder, overrides applied; known node types only, found without validating."""
    from swapgraph.runtime.graph.overrides import apply_overrides

    spec = load(spec)
    registry = default_registry()
    doc, _ = apply_overrides(spec.document, list(spec.overrides), registry)
    base = Path(spec.path).resolve().parent if spec.path else Path.cwd()
    found = []
    nodes = doc.get("nodes")
    for node_id, node in (nodes.items() if isinstance(nodes, dict) else []):
        if not isinstance(node, dict) or node.get("type") not in registry:
            continue
        params = node.get("params") if isinstance(node.get("params"), dict) else {}
        for name, role in registry.get(node["type"]).schema.params.path_fields().items():
            value = params.get(name)
            if isinstance(value, (str, Path)) and str(value):
                found.append(FileParam(str(node_id), name, role, base / value))
    return found


_QUOTED = r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\""
_NODE = re.compile(r"^node (?:" + _QUOTED + ")")
_OVERRIDE = re.compile(r"^override ([^.\s]+)\.(\S+)")
_PARAM = re.compile(r"\bparam (?:" + _QUOTED + ")")
_PORT = re.compile(r"\b(?:input|output|port) (?:" + _QUOTED + ")")


def issue_subject(issue: Issue) -> dict[str, str | None]:
    """What an issue is about, from its ``where``: ``{"node", "port", "param"}``, each None
    when the issue does not name one (a whole-graph issue names none)."""
    def first(pattern: re.Pattern, text: str) -> str | None:
        m = pattern.search(text)
        return None if m is None else next(g for g in m.groups() if g is not None)

    override = _OVERRIDE.match(issue.where)
    if override:
        return {"node": override.group(1), "port": None, "param": override.group(2)}
    return {"node": first(_NODE, issue.where), "port": first(_PORT, issue.where), "param": first(_PARAM, issue.where)}
