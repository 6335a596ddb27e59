"""swapgraph's public Python API: what every front end (the CLI, the farm's workers, the
demo, the browser editor, the timeline tools) calls.

    from swapgraph import api

    shot = api.load("graphs/swap.json", {"plate.path": "plates/sh010.mp4", "swap.model": "models/a_to_b"})
    problems = api.validate(shot)                  # [] when it can run
    report = api.run(shot, frames=(0, 47), device="cuda", progress=print)
    view = api.preview(shot, "blend", 12)           # view.image: (3, H, W) in [0, 1]
    view = api.preview(shot.with_params("blend", feather=24), "blend", 12)   # reuses the upstream results
    api.shot_info(shot, "blend")                   # the shot it reads: frames, fps, size
    api.render(shot, "out/sh010.mov", workers=2)    # chunks on a LocalCluster, joined with the audio

Errors are :class:`swapgraph.runtime.errors.SwapgraphError` subclasses whose one-line
messages name the file, node, param or argument and the fix.
"""

from __future__ import annotations

from swapgraph.farm.plan import DEFAULT_CHUNK_SIZE, ChunkJob, RenderPlan
from swapgraph.runtime.executor import CancelToken
from swapgraph.runtime.preview import PreviewCache

from .graphs import FileParam, GraphSpec, file_params, issue_subject, load, presets, save_graph, validate
from .nodes import graph_schema, node_origin, node_types, parse_frames
from .outputs import check_output, graph_inputs, stop_on_signals
from .render import chunk_job, clean_chunks, connect_farm, join_chunks, plan_render, render
from .run import MediaInfo, Preview, RunReport, ShotInfo, media_info, preview, preview_cache, run, run_chunk, shot_info
from .training import (PRESET_NAMES, PretrainConfig, TrainConfig, faceset_buckets, faceset_summary, filter_faceset,
                       parse_batch_schedule, pretrain, train)

__all__ = ["CancelToken", "ChunkJob", "DEFAULT_CHUNK_SIZE", "FileParam", "GraphSpec", "MediaInfo", "PRESET_NAMES", "Preview", "PreviewCache",
           "PretrainConfig", "RenderPlan", "RunReport", "ShotInfo", "TrainConfig", "check_output", "chunk_job", "clean_chunks", "connect_farm", "faceset_buckets", "faceset_summary", "file_params",
           "filter_faceset", "graph_inputs", "graph_schema", "issue_subject", "join_chunks", "load", "media_info", "node_origin", "node_types",
           "parse_batch_schedule", "parse_frames", "plan_render", "presets", "pretrain", "preview", "preview_cache", "render",
           "run", "run_chunk", "save_graph", "shot_info", "stop_on_signals", "train", "validate"]
