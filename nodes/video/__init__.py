"""Video I/O with PyAV: Decode and Encode, and the plain functions under them.

Pixel formats change only here: Decode turns any pixel format and bit depth into RGB
float in [0, 1], shape (B, 3, H, W); Encode turns that back into the codec's format.
A module per job: ``probe`` (opening, indexing and reading inputs), ``decode`` (the
Decode node), ``encode`` (writers, containers and the Encode node), ``audio`` (muxing
the source's audio into an output).
"""
