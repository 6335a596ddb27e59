"""The ``swapgraph`` command line: a thin shell over :mod:`swapgraph.api`."""
