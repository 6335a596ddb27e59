"""Reading a graph file: JSON only, nothing in it executed.

``parse_json`` is the strict reader of every JSON text swapgraph takes from a user: a
graph file, a ``--set`` value, and the files it reads back (chunk manifests, pull lists).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import GraphFileError

#: lists and objects inside each other: a graph file needs a handful (nodes, a node, its
#: params, a list value, the editor's ``ui``); deeper is a mistake, or a file made to crash a reader
MAX_DEPTH = 64
#: a graph file is a few kilobytes; this refuses a video given as a graph before reading it whole
MAX_GRAPH_BYTES = 16 << 20


class JSONProblem(ValueError):
    """JSON text that swapgraph does not take; ``str()`` says why and where, ready for a line."""


class _Duplicated(dict):
    """An object whose text gave a key twice (``twice``: the first such key)."""

    twice: str


class _Digits:
    """An integer too long for Python to convert (its digits counted, never converted)."""

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) == len(pairs):
        return doc
    seen: set[str] = set()
    twice = next(k for k, _ in pairs if k in seen or seen.add(k))
    marked = _Duplicated(doc)
    marked.twice = twice
    return marked


def _int(text: str) -> int | _Digits:
    try:
        return int(text)
    except ValueError:  # over sys.get_int_max_str_digits()
        return _Digits(text)


def _dotted(path: list[Any]) -> str:
    """``["nodes", "out", "params"]`` -> ``nodes.out.params``; list items as ``[i]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _where(path: list[Any]) -> str:
    """A place in a graph document, as validate names it when it can."""
    if len(path) >= 4 and path[0] == "nodes" and path[2] == "params":
        return f"node {path[1]!r} param {path[3]!r}" + (f" at {_dotted(path[4:])}" if path[4:] else "")
    if len(path) >= 2 and path[0] == "nodes":
        return f"node {path[1]!r}" + (f" at {_dotted(path[2:])}" if path[2:] else "")
    return f"at {_dotted(path)}" if path else "at the top level"


def parse_json(text: str) -> Any:
    """JSON text as data, stricter than ``json.loads``: a key given twice in an object (a
    second node with the same id would silently replace the first), lists and objects
    nested deeper than ``MAX_DEPTH``, and an integer too long for Python to convert are
    refused with ``JSONProblem`` naming where they are."""
    try:
        doc = json.loads(text, object_pairs_hook=_pairs, parse_int=_int)
    except RecursionError:
        raise JSONProblem(f"nested too deep (over {MAX_DEPTH} lists and objects inside each other)") from None
    except json.JSONDecodeError as exc:
        raise JSONProblem(f"not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); fix the JSON "
                          "syntax") from None
    stack: list[tuple[Any, list[Any]]] = [(doc, [])]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise JSONProblem(f"{_where(path[:4])}: nested too deep (over {MAX_DEPTH} lists and objects inside "
                              "each other)")
        if isinstance(value, _Digits):
            raise JSONProblem(f"{_where(path)}: a number of {value.digits} digits, more than can be read; give a "
                              "number in the param's range")
        if isinstance(value, _Duplicated):
            what = "node id" if path == ["nodes"] else "key"
            place = f"in {_dotted(path)!r}" if path else "at the top level"
            raise JSONProblem(f"{what} {value.twice!r} appears twice {place}; the second would silently replace the "
                              "first: rename or remove one")
        if isinstance(value, dict):
            stack.extend((v, [*path, k]) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, [*path, i]) for i, v in enumerate(value))
    return doc


def shown_path(path: Path | str, limit: int = 160) -> str:
    """A path for an error line: whole, or its start and end when it is longer than ``limit``."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 3:]} ({len(text)} characters)"


def load_graph_document(path: Path) -> dict[str, Any]:
    """Read a graph file as JSON (no other format, nothing executed); GraphFileError, one
    line naming the file, when it is not one."""
    from .validate import _path_problem

    path = Path(path)
    shown = shown_path(path)
    problem = _path_problem(path)
    if problem is not None:
        raise GraphFileError(f"{shown}: {problem}; fix: shorten the path or the file name")
    try:
        if path.is_dir():
            raise GraphFileError(f"{shown}: is a folder, not a graph file; fix: give the graph's .json file")
        if path.stat().st_size > MAX_GRAPH_BYTES:
            raise GraphFileError(f"{shown}: {path.stat().st_size >> 20} MiB, too large for a graph file (a few "
                                 "kilobytes of JSON); fix: give the graph's .json file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise GraphFileError(f"{shown}: graph file not found; check the path") from None
    except OSError as exc:
        raise GraphFileError(f"{shown}: cannot read graph file ({exc.strerror or exc}); check the file") from None
    try:
        text = data.decode("utf-8-sig")  # an editor's byte-order mark is not a fault
    except UnicodeDecodeError as exc:
        raise GraphFileError(f"{shown}: not a JSON text file (byte {exc.start} is not UTF-8); fix: give a graph "
                             "file, JSON written as UTF-8") from None
    try:
        doc = parse_json(text)
    except JSONProblem as exc:
        raise GraphFileError(f"{shown}: {exc}") from None
    if not isinstance(doc, dict):
        raise GraphFileError(f"{shown}: a graph file is a JSON object with 'version' and 'nodes', "
                             f"found {type(doc).__name__}")
    return doc
