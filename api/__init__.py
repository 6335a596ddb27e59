"""swapgraph's public Python API."""
