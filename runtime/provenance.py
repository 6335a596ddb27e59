"""What every output says about itself: synthetic media, made by swapgraph, and how.

The tag in the container metadata and the JSON sidecar are features, not options.
"""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

SYNTHETIC_STATEMENT = ("Synthetic media: this video contains faces swapped by swapgraph, "
                       "an autoencoder face-swap tool. It does not show real events as recorded.")


def swapgraph_version() -> str:
    try:
        return version("swapgraph")
    except PackageNotFoundError:
        return "0+unknown"


def container_metadata() -> dict[str, str]:
    """Tags written into every video container swapgraph writes."""
    v = swapgraph_version()
    return {
        "comment": SYNTHETIC_STATEMENT,
        "description": SYNTHETIC_STATEMENT,
        "synthetic_media": "true",
        "generator": f"swapgraph {v}",
        "encoded_by": f"swapgraph {v}",
    }


def png_metadata():
    """The text chunks of every PNG swapgraph writes: the container tags, and ``Software``
    naming swapgraph (how a later run knows the file is its own to replace)."""
    from PIL.PngImagePlugin import PngInfo

    from .files import PNG_SOFTWARE_KEY

    meta = PngInfo()
    meta.add_text(PNG_SOFTWARE_KEY, f"swapgraph {swapgraph_version()}")
    for key, value in container_metadata().items():
        meta.add_text(key, value)
    return meta


def versions() -> dict[str, str]:
    found = {"swapgraph": swapgraph_version(), "python": platform.python_version()}
    for name in ("torch", "kornia", "av", "numpy", "mediapipe", "pydantic"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    try:
        import av

        found["libavcodec"] = ".".join(map(str, av.library_versions["libavcodec"]))
    except Exception:  # informational only
        pass
    return found


def sidecar_path(output: Path) -> Path:
    """``shot.mp4`` -> ``shot.mp4.swapgraph.json`` (beside a folder for image sequences)."""
    return output.with_name(output.name + ".swapgraph.json")


def sidecar_document(output: Path, summary: dict[str, Any], *, graph_hash: str, graph_name: str,
                     graph_path: Path | None, node_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "synthetic_media": True,
        "statement": SYNTHETIC_STATEMENT,
        "generator": f"swapgraph {swapgraph_version()}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "output": str(output),
        "written_by_node": node_id,
        "graph": {"name": graph_name, "hash": graph_hash, "path": str(graph_path) if graph_path else None},
        "command": sys.argv,
        "versions": versions(),
        **extra,
        **summary,
    }
