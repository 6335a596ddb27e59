"""Faces: detection, 478-point landmarks, tracking, head pose, orientation, smoothing.

Face analysis runs on the CPU with MediaPipe 0.10.21 (BlazeFace full-range detection
and the refined face mesh, both shipped in its wheel), in a pool of worker processes
sized to the machine. Workers get small images: each frame downscaled for detection,
then a face-sized crop per face for the mesh; never the plate itself. Results come back
in frame order, and tracking, pose and orientation buckets are computed in order in the
node's own thread.

A module per job: ``landmarker`` (MediaPipe, what a worker process runs), ``detector``
(the pool, frames in and untracked faces out), ``tracking``, ``pose`` (head pose and
orientation buckets), ``smoothing`` (the One-Euro filter), ``template`` (the canonical
face) and ``nodes`` (DetectFaces, SmoothLandmarks). This package imports nothing itself:
a worker process imports ``landmarker`` alone, without torch.
"""
