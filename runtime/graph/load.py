"""Reading a graph file: JSON only, nothing in it executed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import GraphFileError


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
