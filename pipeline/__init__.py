"""Whole pipelines on the Python API: ``swapgraph swap PLATE FACE --out OUT``, from two
clips to a finished, QC'd shot in one resumable call (what ``swapgraph demo`` runs on the
packaged photos)."""
