"""``node.param=value`` overrides (the CLI's ``--set``), typed by the param's schema (one graph, many shots)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import TypeAdapter, ValidationError

from ..errors import GraphFileError, did_you_mean_or_list
from ..node import Issue, Params
from ..registry import Registry
from .load import JSONProblem, parse_json


def parse_override(text: str) -> tuple[str, str, str]:
    """``node.param=value`` -> (node, param, value)."""
    key, sep, value = text.partition("=")
    node, dot, param = key.partition(".")
    if not sep or not dot or not node or not param:
        raise GraphFileError(f"override {text!r}: expected node.param=value, e.g. out.crf=18")
    return node, param, value


def _override_value(params_cls: type[Params], param: str, value: str) -> Any:
    """Type an override's text by the param's schema (``null`` means None)."""
    info = params_cls.model_fields[param]
    if value == "null":
        return None
    if value[:1] in "[{":
        return parse_json(value)
    typed = TypeAdapter(info.annotation).validate_strings(value)
    if params_cls.path_fields().get(param) and isinstance(typed, Path) and not typed.is_absolute():
        typed = Path.cwd() / typed  # a path typed on the command line is relative to where it was typed
    return typed


def _quoted(value: str, limit: int = 60) -> str:
    """An override's text for an error line: quoted whole, or its start and its length."""
    return repr(value) if len(value) <= limit else f"{value[:limit - 20]!r}... ({len(value)} characters)"


def apply_overrides(doc: Mapping[str, Any], overrides: Sequence[str], registry: Registry) -> tuple[dict[str, Any], list[Issue]]:
    """Return a copy of ``doc`` with the overrides applied, and the overrides' problems."""
    doc = json.loads(json.dumps(doc))  # deep copy of plain JSON data
    issues: list[Issue] = []
    nodes = doc.get("nodes") if isinstance(doc.get("nodes"), dict) else {}
    for text in overrides:
        try:
            node_id, param, value = parse_override(text)
        except GraphFileError as exc:
            issues.append(Issue("override", str(exc).removeprefix("override ")))
            continue
        where = f"override {node_id}.{param}"
        spec = nodes.get(node_id)
        if not isinstance(spec, dict):
            issues.append(Issue(where, f"no node {node_id!r} in the graph", did_you_mean_or_list(node_id, nodes)))
            continue
        type_name = spec.get("type")
        if type_name not in registry:
            continue  # reported by validation
        params_cls = registry.get(type_name).schema.params
        if param not in params_cls.model_fields:
            issues.append(Issue(where, f"{type_name} has no param {param!r}",
                                did_you_mean_or_list(param, params_cls.model_fields)))
            continue
        try:
            typed = _override_value(params_cls, param, value)
        except JSONProblem as exc:
            issues.append(Issue(where, str(exc), f"give a value of the param's type ({type_name})"))
            continue
        except (ValidationError, ValueError) as exc:
            msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            issues.append(Issue(where, f"{msg}, found {_quoted(value)}",
                                f"give a value of the param's type ({type_name})"))
            continue
        spec.setdefault("params", {})[param] = str(typed) if isinstance(typed, Path) else typed
    return doc, issues
