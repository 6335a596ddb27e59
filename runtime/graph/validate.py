"""Validating a graph document and binding it to node classes, before anything runs.

Every problem is collected and raised at once (GraphValidationError), each naming the
node, port or param, what was expected and found, and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import networkx as nx
from pydantic import ValidationError

from ..errors import GraphValidationError, did_you_mean, did_you_mean_or_list
from ..files import can_write, nearest_existing, replace_problem
from ..node import Issue
from ..ports import is_compatible
from ..registry import Registry
from .model import GRAPH_VERSION, NODE_KEYS, TOP_LEVEL_KEYS, BoundNode, Graph, Settings
from .overrides import apply_overrides


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


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, Path) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
        issues.append(Issue(where, f"unknown node type {type_name!r}",
                            did_you_mean(str(type_name), registry.names())
                            or "see `swapgraph nodes`, or install the plugin that provides it"))
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
                                    did_you_mean_or_list(name, params_cls.model_fields)))
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
                                + (", ".join(map(repr, declared)) or "no inputs"),
                                did_you_mean_or_list(port, declared)))
            continue
        if not isinstance(link, str) or link.count(".") != 1:
            issues.append(Issue(pwhere, f"expected a link \"node.port\", found {_describe(link)}",
                                'write the upstream node id and output port, e.g. "plate.frames"'))
            continue
        src_id, src_port = link.split(".")
        if src_id not in raw_nodes:
            issues.append(Issue(pwhere, f"links to {link!r} but there is no node {src_id!r}",
                                did_you_mean_or_list(src_id, raw_nodes)))
            continue
        dag.add_edge(src_id, node_id)
        src = bound.get(src_id)
        if src is None or cls is None:
            continue
        outputs = src.cls.schema.outputs
        if src_port not in outputs:
            issues.append(Issue(pwhere, f"links to {link!r} but {src.cls.type_name()} {src_id!r} has no output "
                                f"{src_port!r}; its outputs: " + (", ".join(map(repr, outputs)) or "none"),
                                did_you_mean_or_list(src_port, outputs)))
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
        problem = _path_problem(p)
        if problem is not None:
            issues.append(Issue(where, problem, "shorten the path or the file name"))
        elif not p.exists():
            issues.append(Issue(where, f"input file {str(p)!r} does not exist",
                                "check the path (relative paths are relative to the graph file)"))
        elif not os.access(p, os.R_OK):
            issues.append(Issue(where, f"input file {str(p)!r} is not readable", "fix its permissions"))
        else:
            inputs[p.resolve()] = ref
    outputs: dict[Path, str] = {}
    for node_id, node in bound.items():
        if node.params is None:
            continue
        for name, role in node.params.path_fields().items():
            value = getattr(node.params, name)
            if value is None or role != "output":
                continue
            where = f"node {node_id!r} ({node.cls.type_name()}) param {name!r}"
            problem = _path_problem(Path(value), BESIDE_MARGIN)
            if problem is not None:
                issues.append(Issue(where, problem, "shorten the path or the file name"))
                continue
            p = Path(value).resolve()
            clash = next((ref for given, ref in inputs.items() if given == p), None)
            if clash is not None:
                issues.append(Issue(where, f"output {str(p)!r} is also the input {clash}",
                                    "write the output to a new file; swapgraph never overwrites its inputs"))
                continue
            kind = node.cls.output_kind(node.params, name)
            found = None  # one issue per output: its first problem
            for target in [p, *(Path(x).resolve() for x in node.cls.extra_outputs(node.params, name))]:
                if target in outputs:
                    found = found or Issue(where, f"output {str(target)!r} is also written by {outputs[target]}",
                                           "give each output its own path")
                outputs[target] = f"{node_id}.{name}"
                problem = replace_problem(target, kind if target == p else "file", inputs=inputs)
                if problem is not None and found is None:
                    text, _, fix = problem.partition("; ")
                    found = Issue(where, text, fix)
            if found is not None:
                issues.append(found)
                continue
            folder = nearest_existing(p.parent)
            if not can_write(folder):
                issues.append(Issue(where, f"output folder {str(p.parent)!r} is not writable"
                                    + ("" if folder == p.parent else f" (nearest existing folder {str(folder)!r})"),
                                    "choose a folder you can write to"))


#: how much longer than an output's name the names written beside it get (its sidecar, the
#: lock file and temporary name of each: ``.NAME.swapgraph.json.swapgraph-lock`` is the longest)
BESIDE_MARGIN = 48


def _path_problem(path: Path, margin: int = 0) -> str | None:
    """A path the system cannot hold: a name over 255 bytes (less ``margin``, what the names
    written beside an output add), or the whole over PATH_MAX."""
    text = str(path)
    if len(os.fsencode(text)) + margin >= 4096:
        return f"the path is {len(text)} characters long, over the system's limit of {4095 - margin}"
    for part in path.parts:
        if len(os.fsencode(part)) + margin > 255:
            return (f"the file name {part[:40]!r}... is {len(part)} characters long, over the limit of "
                    f"{255 - margin}" + (" (255, less what the sidecar, lock and temporary names add)" if margin else ""))
    return None
