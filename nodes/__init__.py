"""Built-in node types, one module per family.

``builtin_nodes()`` is the registry's source. Modules load on first use, so a process
that needs one module (a face-detection worker) does not import them all.
"""

from __future__ import annotations


def builtin_nodes() -> list[type]:
    from .align import Align
    from .blend import MaskBlend
    from .color import ColorCorrect, MatchDetail
    from .face import DetectFaces, SmoothLandmarks
    from .faceset import WriteFaceset
    from .mask import FaceMask
    from .report import QualityReport
    from .resample import Downscale, Resize, Upscale
    from .swap import Swap
    from .video import Decode, Encode

    return [Decode, Encode, Resize, DetectFaces, SmoothLandmarks, Align, Downscale, Upscale, WriteFaceset, Swap,
            FaceMask, ColorCorrect, MatchDetail, MaskBlend, QualityReport]
