"""Built-in node types, one module per family. The list below is the registry's source."""

from __future__ import annotations

from .resample import Resize
from .video import Decode, Encode

BUILTIN_NODES = [Decode, Encode, Resize]

__all__ = ["BUILTIN_NODES", "Decode", "Encode", "Resize"]
