"""Graph files (version 1): load, override, validate, and the JSON Schema.

A graph file is data: nothing in it is executed. ``validate_graph`` checks everything
before any frame is decoded, and reports every problem at once, each naming the node,
port or param, what was expected and found, and the fix.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .errors import GraphFileError, GraphValidationError
from .files import can_write, nearest_existing
from .node import Issue, Node, Params
from .ports import is_compatible
from .registry import Registry

GRAPH_VERSION = 1
TOP_LEVEL_KEYS = {"version", "name", "settings", "nodes", "$schema", "description"}
NODE_KEYS = {"type", "inputs", "params", "device"}


class Settings(BaseModel):
    """Graph-wide settings; the CLI's ``--device`` and ``--batch-size`` override them."""

    model_config = ConfigDict(extra="forbid")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where nodes run unless a node says otherwise")
    batch_size: int = Field(8, ge=1, le=1024, description="consecutive frames per batch")
    queue_depth: int = Field(4, ge=1, le=64, description="batches buffered between two nodes")


@dataclass
class BoundNode:
    """A node of a validated graph: its class, checked params and resolved links."""

    id: str
    cls: type[Node]
    params: Params  # None only while validation is collecting problems
    device: Literal["auto", "cpu", "cuda"] | None
    #: input port -> (upstream node id, upstream output port)
    inputs: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Graph:
    """An immutable, validated graph definition; executors run it, never change it."""

    name: str
    path: Path | None
    settings: Settings
    nodes: dict[str, BoundNode]
    order: list[str]
    dag: nx.DiGraph
    hash: str
    document: dict[str, Any]

    def ancestors(self, node_id: str) -> list[str]:
        keep = nx.ancestors(self.dag, node_id) | {node_id}
        return [n for n in self.order if n in keep]

    def consumers(self, node_id: str) -> list[str]:
        return [n for n in self.order if n in self.dag.successors(node_id)]

    def input_prerolls(self, keep: list[str] | None = None) -> dict[str, int]:
        """For each node, how many frames before the first output frame its inputs must cover.

        A stateful node with pre-roll p needs its inputs from p frames before the first
        frame its consumers need, so the pre-rolls add up along each path to a sink and
        the longest path wins: ``need(v) = preroll(v) + max(need(c) for c in consumers)``.
        ``keep`` limits the graph to those nodes (a preview runs only ancestors).
        """
        nodes = self.order if keep is None else [n for n in self.order if n in keep]
        need: dict[str, int] = {}
        for nid in reversed(nodes):
            b = self.nodes[nid]
            after = [need[c] for c in self.consumers(nid) if c in need]
            need[nid] = b.cls.preroll(b.params) + max(after, default=0)
        return need

    def preroll(self, keep: list[str] | None = None) -> int:
        """Frames the sources must emit before the first output frame (see ``input_prerolls``)."""
        return max(self.input_prerolls(keep).values(), default=0)


# --- loading --------------------------------------------------------------------------

def load_graph_document(path: Path) -> dict[str, Any]:
    """Read a graph file as JSON (no other format, nothing executed)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphFileError(f"{path}: graph file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphFileError(f"{path}: cannot read graph file ({exc}); check the file") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GraphFileError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
            "fix the JSON syntax") from None
    if not isinstance(doc, dict):
        raise GraphFileError(f"{path}: a graph file is a JSON object with 'version' and 'nodes', "
                             f"found {type(doc).__name__}")
    return doc


def parse_override(text: str) -> tuple[str, str, str]:
    """``node.param=value`` -> (node, param, value)."""
    key, sep, value = text.partition("=")
    node, dot, param = key.partition(".")
    if not sep or not dot or not node or not param:
        raise GraphFileError(f"--set {text!r}: expected node.param=value, e.g. --set out.crf=18")
    return node, param, value


def _override_value(params_cls: type[Params], param: str, value: str) -> Any:
    """Type a command-line string by the param's schema (``null`` means None)."""
    info = params_cls.model_fields[param]
    if value == "null":
        return None
    if value[:1] in "[{":
        return json.loads(value)
    typed = TypeAdapter(info.annotation).validate_strings(value)
    if params_cls.path_fields().get(param) and isinstance(typed, Path) and not typed.is_absolute():
        typed = Path.cwd() / typed  # a path typed on the command line is relative to where it was typed
    return typed


def apply_overrides(doc: Mapping[str, Any], overrides: Sequence[str], registry: Registry) -> tuple[dict[str, Any], list[Issue]]:
    """Return a copy of ``doc`` with ``--set`` overrides applied, and the overrides' problems."""
    doc = json.loads(json.dumps(doc))  # deep copy of plain JSON data
    issues: list[Issue] = []
    nodes = doc.get("nodes") if isinstance(doc.get("nodes"), dict) else {}
    for text in overrides:
        try:
            node_id, param, value = parse_override(text)
        except GraphFileError as exc:
            issues.append(Issue("--set", str(exc).removeprefix("--set ")))
            continue
        where = f"--set {node_id}.{param}"
        spec = nodes.get(node_id)
        if not isinstance(spec, dict):
            issues.append(Issue(where, f"no node {node_id!r} in the graph", _did_you_mean(node_id, nodes)))
            continue
        type_name = spec.get("type")
        if type_name not in registry:
            continue  # reported by validation
        params_cls = registry.get(type_name).schema.params
        if param not in params_cls.model_fields:
            issues.append(Issue(where, f"{type_name} has no param {param!r}",
                                _did_you_mean(param, params_cls.model_fields)))
            continue
        try:
            typed = _override_value(params_cls, param, value)
        except (ValidationError, ValueError) as exc:
            msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            issues.append(Issue(where, f"{msg}, found {value!r}", f"give a value of the param's type ({type_name})"))
            continue
        spec.setdefault("params", {})[param] = str(typed) if isinstance(typed, Path) else typed
    return doc, issues


def _did_you_mean(name: str, choices) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return ("choose one of: " + ", ".join(map(repr, choices))) if choices else ""


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, Path) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- validation -----------------------------------------------------------------------

def validate_graph(doc: Mapping[str, Any], registry: Registry, *, path: Path | None = None,
                   overrides: Sequence[str] = (), probe: bool = True) -> Graph:
    """Check a graph document and bind it to node classes; raise with every problem at once.

    ``path`` is the graph file: relative paths resolve against its folder.
    ``probe`` also opens input media (what ``validate`` and ``run`` do).
    """
    base = Path(path).resolve().parent if path else Path.cwd()
    doc, issues = apply_overrides(doc, overrides, registry)
    where_file = str(path) if path else "graph"

    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            issues.append(Issue(f"{where_file}: key {key!r}", "unknown top-level key",
                                "use only " + ", ".join(sorted(TOP_LEVEL_KEYS))))
    if doc.get("version") != GRAPH_VERSION:
        issues.append(Issue(f"{where_file}: 'version'", f"expected {GRAPH_VERSION}, found {_describe(doc.get('version'))}",
                            f'set "version": {GRAPH_VERSION}'))
    try:
        settings = Settings.model_validate(doc.get("settings") or {})
    except ValidationError as exc:
        settings = Settings()
        for err in exc.errors():
            name = ".".join(map(str, err["loc"])) or "settings"
            issues.append(Issue(f"settings {name!r}", _pydantic_problem(err),
                                "allowed settings: " + ", ".join(Settings.model_fields)))
    raw_nodes = doc.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        issues.append(Issue(f"{where_file}: 'nodes'", "expected an object of nodes keyed by id, found "
                            + _describe(raw_nodes), 'add "nodes": {"id": {"type": ...}}'))
        raise GraphValidationError(issues)

    bound: dict[str, BoundNode] = {}
    for node_id, spec in raw_nodes.items():
        node = _bind_node(node_id, spec, registry, base, issues)
        if node is not None:
            bound[node_id] = node

    dag = nx.DiGraph()
    dag.add_nodes_from(raw_nodes)
    for node_id, spec in raw_nodes.items():
        if not isinstance(spec, dict):
            continue
        _check_links(node_id, spec, raw_nodes, bound, registry, dag, issues)

    order: list[str] = []
    try:
        cycle = nx.find_cycle(dag)
    except nx.NetworkXNoCycle:
        order = list(nx.topological_sort(dag))
    else:
        loop = " -> ".join([cycle[0][0]] + [v for _, v in cycle])
        issues.append(Issue(f"node {cycle[0][0]!r}", f"the links form a cycle: {loop}",
                            "a graph is acyclic: remove one of these links"))

    _check_paths(bound, issues)
    if probe and not issues:
        for node_id, node in bound.items():
            instance = node.cls(node_id, node.params, device=_cpu())
            for issue in instance.check(set(node.inputs)):
                issues.append(Issue(f"node {node_id!r} ({node.cls.type_name()}) {issue.where}".rstrip(),
                                    issue.problem, issue.fix))
    if issues:
        raise GraphValidationError(issues)

    canonical = {
        "version": GRAPH_VERSION,
        "settings": settings.model_dump(),
        "nodes": {nid: {"type": n.cls.type_name(), "device": n.device,
                        "inputs": {p: f"{s}.{o}" for p, (s, o) in sorted(n.inputs.items())},
                        "params": n.params.model_dump(mode="json")}
                  for nid, n in sorted(bound.items())},
    }
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
    return Graph(name=str(doc.get("name") or (Path(path).stem if path else "graph")), path=path,
                 settings=settings, nodes=bound, order=order, dag=dag, hash=digest, document=canonical)


def _cpu():
    import torch
    return torch.device("cpu")


def _pydantic_problem(err: Mapping[str, Any]) -> str:
    if err["type"] == "missing":
        return "required but missing"
    return f"{err['msg']}, found {_describe(err.get('input'))}"


def _bind_node(node_id: str, spec: Any, registry: Registry, base: Path, issues: list[Issue]) -> BoundNode | None:
    where = f"node {node_id!r}"
    if "." in node_id or not node_id:
        issues.append(Issue(where, "a node id cannot be empty or contain '.'", "rename the node"))
    if not isinstance(spec, dict):
        issues.append(Issue(where, f"expected an object with 'type', found {_describe(spec)}",
                            'write {"type": "Decode", "params": {...}}'))
        return None
    for key in spec:
        if key not in NODE_KEYS:
            issues.append(Issue(f"{where} key {key!r}", "unknown key", "use only " + ", ".join(sorted(NODE_KEYS))))
    type_name = spec.get("type")
    if not isinstance(type_name, str) or type_name not in registry:
        close = difflib.get_close_matches(str(type_name), registry.names(), n=1)
        issues.append(Issue(where, f"unknown node type {type_name!r}",
                            f"did you mean {close[0]!r}?" if close else
                            "see `swapgraph nodes`, or install the plugin that provides it"))
        return None
    cls = registry.get(type_name)
    where = f"node {node_id!r} ({type_name})"
    device = spec.get("device")
    if device is not None and device not in ("auto", "cpu", "cuda"):
        issues.append(Issue(f"{where} device", f"expected 'auto', 'cpu' or 'cuda', found {_describe(device)}",
                            "set device to one of those or leave it out"))
        device = None
    elif device == "cuda" and "cuda" not in cls.schema.devices:
        issues.append(Issue(f"{where} device", f"{type_name} runs on {', '.join(cls.schema.devices)}, not cuda",
                            "leave device out for this node"))
    raw_params = spec.get("params") or {}
    if not isinstance(raw_params, dict):
        issues.append(Issue(f"{where} params", f"expected an object, found {_describe(raw_params)}",
                            "write params as {\"name\": value}"))
        return BoundNode(node_id, cls, None, device)
    params_cls = cls.schema.params
    try:
        params = params_cls.model_validate(raw_params)
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "params"
            if err["type"] == "extra_forbidden":
                issues.append(Issue(f"{where} param {name!r}", "unknown param",
                                    _did_you_mean(name, params_cls.model_fields)))
            else:
                issues.append(Issue(f"{where} param {name!r}", _pydantic_problem(err),
                                    f"see `swapgraph nodes {type_name}` for its type, range and choices"))
        return BoundNode(node_id, cls, None, device)  # links are still checked
    resolved = {}
    for name in params_cls.path_fields():
        value = getattr(params, name)
        if value is not None and not Path(value).is_absolute():
            resolved[name] = base / value
    if resolved:
        params = params.model_copy(update=resolved)
    return BoundNode(node_id, cls, params, device)


def _check_links(node_id: str, spec: Mapping[str, Any], raw_nodes: Mapping[str, Any], bound: dict[str, BoundNode],
                 registry: Registry, dag: nx.DiGraph, issues: list[Issue]) -> None:
    links = spec.get("inputs") or {}
    node = bound.get(node_id)
    type_name = spec.get("type")
    where = f"node {node_id!r}" + (f" ({type_name})" if isinstance(type_name, str) else "")
    if not isinstance(links, dict):
        issues.append(Issue(f"{where} inputs", f"expected an object of port: \"node.port\", found {_describe(links)}",
                            'write "inputs": {"frames": "plate.frames"}'))
        return
    cls = registry.get(type_name) if isinstance(type_name, str) and type_name in registry else None
    declared = cls.schema.inputs if cls else {}
    for port, link in links.items():
        pwhere = f"{where} input {port!r}"
        if cls and port not in declared:
            issues.append(Issue(pwhere, f"unknown input port; {type_name} has "
                                + (", ".join(map(repr, declared)) or "no inputs"), _did_you_mean(port, declared)))
            continue
        if not isinstance(link, str) or link.count(".") != 1:
            issues.append(Issue(pwhere, f"expected a link \"node.port\", found {_describe(link)}",
                                'write the upstream node id and output port, e.g. "plate.frames"'))
            continue
        src_id, src_port = link.split(".")
        if src_id not in raw_nodes:
            issues.append(Issue(pwhere, f"links to {link!r} but there is no node {src_id!r}",
                                _did_you_mean(src_id, raw_nodes)))
            continue
        dag.add_edge(src_id, node_id)
        src = bound.get(src_id)
        if src is None or cls is None:
            continue
        outputs = src.cls.schema.outputs
        if src_port not in outputs:
            issues.append(Issue(pwhere, f"links to {link!r} but {src.cls.type_name()} {src_id!r} has no output "
                                f"{src_port!r}; its outputs: " + (", ".join(map(repr, outputs)) or "none"),
                                _did_you_mean(src_port, outputs)))
            continue
        want, got = declared[port].type, outputs[src_port].type
        if not is_compatible(got, want):
            fitting = [f"{src_id}.{p}" for p, o in outputs.items() if is_compatible(o.type, want)]
            issues.append(Issue(pwhere, f"expects {want.__name__}, but {link!r} gives {got.__name__}",
                                f"link an output of type {want.__name__}"
                                + (f", e.g. {fitting[0]!r}" if fitting else "")))
            continue
        if node is not None:
            node.inputs[port] = (src_id, src_port)
    for port, decl in declared.items():
        if decl.required and port not in links:
            issues.append(Issue(f"{where} input {port!r}", f"required input of type {decl.type.__name__} is not linked",
                                f'add "inputs": {{"{port}": "<node>.<port>"}}'))


def _path_params(bound: Mapping[str, BoundNode], role: str):
    """(where, "node.param", path) for every set path param of ``role`` ("input"/"output")."""
    for node_id, node in bound.items():
        if node.params is None:
            continue
        for name, r in node.params.path_fields().items():
            value = getattr(node.params, name)
            if value is not None and r == role:
                yield f"node {node_id!r} ({node.cls.type_name()}) param {name!r}", f"{node_id}.{name}", Path(value)


def _check_paths(bound: Mapping[str, BoundNode], issues: list[Issue]) -> None:
    inputs: dict[Path, str] = {}
    for where, ref, p in _path_params(bound, "input"):
        if not p.exists():
            issues.append(Issue(where, f"input file {str(p)!r} does not exist",
                                "check the path (relative paths are relative to the graph file)"))
        elif not os.access(p, os.R_OK):
            issues.append(Issue(where, f"input file {str(p)!r} is not readable", "fix its permissions"))
        else:
            inputs[p.resolve()] = ref
    outputs: dict[Path, str] = {}
    for where, ref, p in _path_params(bound, "output"):
        p = p.resolve()
        if p in inputs:
            issues.append(Issue(where, f"output {str(p)!r} is also the input {inputs[p]}",
                                "write the output to a new file; swapgraph never overwrites its inputs"))
        if p in outputs:
            issues.append(Issue(where, f"output {str(p)!r} is also written by {outputs[p]}",
                                "give each output its own path"))
        outputs[p] = ref
        folder = nearest_existing(p.parent)
        if not can_write(folder):
            issues.append(Issue(where, f"output folder {str(p.parent)!r} is not writable"
                                + ("" if folder == p.parent else f" (nearest existing folder {str(folder)!r})"),
                                "choose a folder you can write to"))


# --- JSON Schema ---------------------------------------------------------------------

def graph_json_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of graph files, generated from the registry's node schemas."""
    defs: dict[str, Any] = {}
    variants = []
    for name, cls in registry.items():
        params_schema = cls.schema.params.model_json_schema(ref_template=f"#/$defs/{name}.{{model}}")
        for key, sub in params_schema.pop("$defs", {}).items():
            defs[f"{name}.{key}"] = sub
        ports = {
            port: {"type": "string", "pattern": r"^[^.]+\.[^.]+$",
                   "description": f"{decl.type.__name__}: {decl.doc}".rstrip(": ")}
            for port, decl in cls.schema.inputs.items()
        }
        variant = {
            "type": "object",
            "title": name,
            "description": cls.doc().splitlines()[0] if cls.doc() else name,
            "properties": {
                "type": {"const": name},
                "inputs": {"type": "object", "properties": ports, "additionalProperties": False,
                           "required": [p for p, d in cls.schema.inputs.items() if d.required]},
                "params": params_schema,
                "device": {"enum": ["auto", *cls.schema.devices]},
            },
            "required": ["type"] + (["inputs"] if any(d.required for d in cls.schema.inputs.values()) else []),
            "additionalProperties": False,
        }
        defs[f"node.{name}"] = variant
        variants.append({"$ref": f"#/$defs/node.{name}"})
    settings_schema = Settings.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://swapgraph.dev/schema/graph-v1.json",
        "title": "swapgraph graph file, version 1",
        "type": "object",
        "properties": {
            "$schema": {"type": "string"},
            "version": {"const": GRAPH_VERSION},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "settings": settings_schema,
            "nodes": {"type": "object", "minProperties": 1,
                      "propertyNames": {"pattern": r"^[^.]+$"},
                      "additionalProperties": {"oneOf": variants}},
        },
        "required": ["version", "nodes"],
        "additionalProperties": False,
        "$defs": defs,
    }
