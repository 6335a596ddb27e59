"""The built-in node types, registered through the ``swapgraph.nodes`` entry-point group
exactly as a studio's plugin registers its own (see ``pyproject.toml``)."""

from __future__ import annotations

from .align import Align
from .blend import MaskBlend
from .color import ColorCorrect, MatchDetail
from .face.nodes import DetectFaces, SmoothLandmarks
from .faceset import WriteFaceset
from .mask import FaceMask
from .report import QualityReport
from .resample import Downscale, Resize, Upscale
from .swap import Swap
from .video.decode import Decode
from .video.encode import Encode

NODES = [Decode, Encode, Resize, DetectFaces, SmoothLandmarks, Align, Downscale, Upscale, WriteFaceset, Swap,
         FaceMask, ColorCorrect, MatchDetail, MaskBlend, QualityReport]
