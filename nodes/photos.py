"""Real face photos that installed packages ship: the default tier's and the demo's faces.

matplotlib ships ``grace_hopper.jpg`` and scikit-image ``astronaut``; nothing downloads.
"""

from __future__ import annotations

import cv2
import numpy as np


def packaged_photo(name: str = "grace_hopper") -> np.ndarray:
    """A real face photo that an installed package ships, as RGB uint8 (H, W, 3).

    ``grace_hopper`` comes with matplotlib, ``astronaut`` with scikit-image.
    """
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            data = np.frombuffer(f.read(), np.uint8)
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if name == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut())
    raise ValueError(f"unknown packaged photo {name!r}; use grace_hopper or astronaut")
