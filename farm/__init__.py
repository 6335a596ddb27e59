"""The render farm: a shot in frame-range chunks on Dask, joined without re-encoding."""
