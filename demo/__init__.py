"""``swapgraph demo``: the whole pipeline on shots made from packaged photos."""
