"""The JSON Schema of graph files, generated from the registry (``swapgraph schema``)."""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .model import GRAPH_VERSION, Settings


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
            "ui": {"type": "object", "description": "an editor's view state (node positions, ...); ignored when run"},
            "settings": settings_schema,
            "nodes": {"type": "object", "minProperties": 1,
                      "propertyNames": {"pattern": r"^[^.]+$"},
                      "additionalProperties": {"oneOf": variants}},
        },
        "required": ["version", "nodes"],
        "additionalProperties": False,
        "$defs": defs,
    }
