"""``swapgraph edit``: the graph editor in the browser, a local server on the Python API."""
