"""Built-in node types, one module per family. The list below is the registry's source."""

from __future__ import annotations

from .align import Align
from .face import DetectFaces, SmoothLandmarks
from .faceset import WriteFaceset
from .resample import Downscale, Resize, Upscale
from .video import Decode, Encode

BUILTIN_NODES = [Decode, Encode, Resize, DetectFaces, SmoothLandmarks, Align, Downscale, Upscale, WriteFaceset]

__all__ = ["BUILTIN_NODES", *(cls.__name__ for cls in BUILTIN_NODES)]
