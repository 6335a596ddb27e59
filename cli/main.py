"""The ``swapgraph`` command line.

Exit codes: 0 success; 2 bad input or usage, with one ``error: ...`` line per problem;
1 a failure while running; 130 cancelled. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Sequence

from swapgraph.runtime.errors import ArgumentError, GraphValidationError, SwapgraphError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage errors as our one line, exit 2
        raise UsageError(f"{self.prog}: {message}; see {self.prog} --help")


def _parse_range(text: str | None) -> tuple[int, int | None] | None:
    from swapgraph import api

    return None if text is None else api.parse_frames(text)


def _spec(args: argparse.Namespace):
    from swapgraph import api

    return api.load(Path(args.graph), getattr(args, "set", None) or [])


class _FrameBar:
    """A frames progress bar on stderr, made at the first report and only on a terminal.

    It never goes back: a farm's workers report from another thread, maybe late.
    """

    def __init__(self, wanted: bool, desc: str) -> None:
        self.show = wanted and sys.stderr.isatty()
        self.desc = desc
        self.bar = None

    def __call__(self, done: int, total: int | None) -> None:
        if not self.show:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="frame", desc=self.desc, dynamic_ncols=True, file=sys.stderr)
        self.bar.update(max(0, done - self.bar.n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_validate(args: argparse.Namespace) -> int:
    graph = _spec(args).graph()
    print(f"ok: {args.graph}: {len(graph.nodes)} nodes ({', '.join(graph.order)}), hash {graph.hash[:12]}")
    return 0


def _print_run(report) -> None:
    slowest = max(report.node_seconds, key=report.node_seconds.get) if report.node_seconds else "-"
    fps = report.frames / report.seconds if report.seconds else 0.0
    print(f"done: {report.frames} frames in {report.seconds:.1f} s ({fps:.1f} frames/s); "
          f"busiest node {slowest!r} ({report.node_seconds.get(slowest, 0):.1f} s)")
    for nid, stats in report.stats.items():
        print(f"  {nid}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    for out in report.outputs:
        print(f"wrote {out}")


def cmd_run(args: argparse.Namespace) -> int:
    from swapgraph import api

    spec = _spec(args)
    frames = _parse_range(args.frames)
    bar = _FrameBar(not args.quiet, Path(args.graph).stem)
    try:
        if args.manifest:  # one chunk of a render plan, as a farm manager runs it
            if frames is None or frames[1] is None:
                raise UsageError("--manifest: give the chunk's frames as --frames A-B")
            job = api.chunk_job(spec, frames=frames, manifest=Path(args.manifest),
                                render_frames=_parse_range(args.render_frames), batch_size=args.batch_size,
                                device=args.device)
            report = api.run_chunk(job, progress=bar)
        else:
            report = api.run(spec, frames=frames, device=args.device, batch_size=args.batch_size, progress=bar,
                             warn=None if args.quiet else lambda line: print(f"warning: {line}", file=sys.stderr))
    finally:
        bar.close()
    if not args.quiet:
        _print_run(report)
    return 0


def _chunk_command(plan, chunk, program: str = "swapgraph") -> list[str]:
    """The ``swapgraph run`` line of one chunk: the graph file, the render's overrides, the
    sink writing the chunk's own file, the frames and the manifest."""
    args = [program, "run", str(plan.graph_path)]
    for o in plan.overrides:
        args += ["--set", o]
    param = plan.graph.nodes[plan.node].cls.chunk_param
    args += ["--set", f"{plan.node}.{param}={plan.chunk_output(chunk)}", "--frames", f"{chunk.first}-{chunk.last}",
             "--batch-size", str(plan.batch_size), "--manifest", str(plan.chunk_manifest(chunk)),
             "--render-frames", f"{plan.first}-{plan.last}", "--quiet"]
    if plan.device:
        args += ["--device", plan.device]
    return args


def plan_commands(plan, program: str = "swapgraph") -> list[str]:
    """One shell line per chunk, then the join: what a farm manager (Deadline, OpenCue,
    Tractor) runs."""
    import shlex

    lines = [f"# swapgraph render plan: {plan.graph_path.name}, frames {plan.first}-{plan.last} in "
             f"{len(plan.chunks)} chunks; run the chunk lines in any order, on any machines that see these "
             "paths, then the join line", f"# render key {plan.key[:16]}"]
    lines += [shlex.join(_chunk_command(plan, c, program)) for c in plan.chunks]
    lines.append(shlex.join([program, "join", str(plan.chunks_dir), "--out", str(plan.out)]))
    return lines


def cmd_render(args: argparse.Namespace) -> int:
    from swapgraph import api

    plan = api.plan_render(_spec(args), Path(args.out),
                           chunk_size=api.DEFAULT_CHUNK_SIZE if args.chunk_size is None else args.chunk_size,
                           node=args.node, frames=_parse_range(args.frames), batch_size=args.batch_size,
                           device=args.device, chunks_dir=Path(args.chunks) if args.chunks else None)
    if args.plan:
        for line in plan_commands(plan):
            print(line)
        return 0
    bar = _FrameBar(not args.quiet, f"{plan.graph.name} ({len(plan.chunks)} chunks)")

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    try:
        result = api.render(plan, workers=args.workers, scheduler=args.scheduler, retries=args.retries,
                            progress=bar, log=log)
    finally:
        bar.close()
    if args.clean:
        api.clean_chunks(plan.chunks_dir)
    if not args.quiet:
        print(f"done: {result['frames']} frames from {result['chunks']} chunks ({result['chunks_run']} run, "
              f"{result['chunks_skipped']} already done, {result['retries']} retried); audio: "
              f"{', '.join(result['audio']) or 'none'}")
        print(f"wrote {result['output']}")
    return 0


def cmd_join(args: argparse.Namespace) -> int:
    from swapgraph import api

    result = api.join_chunks(Path(args.chunks), Path(args.out))
    print(f"joined {result['chunks']} chunks, {result['frames']} frames; audio: {', '.join(result['audio']) or 'none'}")
    print(f"wrote {result['output']}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from swapgraph import api

    spec = _spec(args)
    out = Path(args.output or f"{Path(args.graph).stem}.{args.node}.{args.frame:06d}.png")
    if out.suffix.lower() != ".png":
        raise ArgumentError("output", str(out), "a preview is a PNG; give the file a .png name")
    api.check_output(out, "file", argument="output", inputs=api.graph_inputs(spec))
    view = api.preview(spec, args.node, args.frame, device=args.device)
    out = view.save(out)
    print(f"wrote {out}")
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    from swapgraph import api

    types = api.node_types()
    if args.type is None:
        for name, cls in types.items():
            first = cls.doc().splitlines()[0] if cls.doc() else ""
            print(f"{name:<16} {cls.schema.category:<10} {first}")
        return 0
    origin = api.node_origin(args.type)
    cls = types[args.type]
    s = cls.schema
    print(f"{args.type}  ({s.category}; devices: {', '.join(s.devices)}; from {origin})\n")
    print(cls.doc() + "\n")
    print("inputs:" if s.inputs else "inputs: none")
    for port, decl in s.inputs.items():
        print(f"  {port:<12} {decl.type.__name__:<10} {'required' if decl.required else 'optional'}  {decl.doc}")
    print("outputs:" if s.outputs else "outputs: none")
    for port, decl in s.outputs.items():
        print(f"  {port:<12} {decl.type.__name__:<10} {decl.doc}")
    print("params:" if s.params.model_fields else "params: none")
    schema = s.params.model_json_schema()
    for name, info in s.params.model_fields.items():
        prop = schema["properties"].get(name, {})
        kind = prop.get("type") or " | ".join(x.get("type", "?") for x in prop.get("anyOf", [])) or "?"
        bounds = []
        for part in [prop, *prop.get("anyOf", [])]:  # an optional param keeps its bounds in anyOf
            bounds += [f"{sign} {part[k]}" for k, sign in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                           ("maximum", "<="), ("exclusiveMaximum", "<")) if k in part]
            if "enum" in part:
                bounds.append("one of " + ", ".join(map(str, part["enum"])))
        default = "required" if info.is_required() else f"default {json.dumps(info.default, default=str)}"
        print(f"  {name:<12} {kind:<16} {default}{'; ' + '; '.join(bounds) if bounds else ''}")
        if info.description:
            print(f"  {'':<12} {info.description}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from swapgraph import api

    print(json.dumps(api.graph_schema(), indent=2))
    return 0


def cmd_faceset_stats(args: argparse.Namespace) -> int:
    from swapgraph import api

    print(api.faceset_summary(Path(args.dir)))
    return 0


def cmd_faceset_filter(args: argparse.Namespace) -> int:
    from swapgraph.api import filter_faceset

    buckets = {b.strip() for spec in args.bucket for b in spec.split(",") if b.strip()} or None
    kept, total = filter_faceset(Path(args.dir), Path(args.out), buckets=buckets, min_sharpness=args.min_sharpness,
                                 min_change=args.min_change)
    print(f"kept {kept} of {total} faces in {args.out}")
    return 0


def _run_settings(args: argparse.Namespace) -> dict:
    """The settings ``train`` and ``pretrain`` share (``RunSettings``), from their common flags."""
    from swapgraph import api

    if args.batch_size is not None and args.batch_schedule is not None:
        raise UsageError("give --batch-size or --batch-schedule, not both")
    schedule = (api.parse_batch_schedule(args.batch_schedule) if args.batch_schedule
                else [(0, args.batch_size or 16)])
    if args.until is not None and args.until != "plateau":
        raise UsageError(f"--until {args.until}: the only stopping rule is 'plateau'")
    for flag in ("steps", "minutes"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise UsageError(f"--{flag} {value}: must be positive")
    return dict(out=Path(args.out), preset=args.preset, bucket=args.bucket, batch_schedule=schedule, steps=args.steps,
                minutes=args.minutes, until_plateau=args.until == "plateau", resume=args.resume, force=args.force,
                seed=args.seed, device=args.device, lr=args.lr, lr_warmup=args.lr_warmup, lr_decay=args.lr_decay,
                beta1=args.beta1, icnr=args.icnr, mask=args.mask, render=args.render,
                feature_weight=args.feature_weight, detail_weight=args.detail_weight, warp=args.warp,
                compile=args.compile, val_every=args.val_every, preview_every=args.preview_every,
                checkpoint_every=args.checkpoint_every, quiet=args.quiet)


def _trained(summary: dict, verb: str) -> str:
    est = f"; {summary['estimate']}" if "estimate" in summary else ""
    return f"{verb} {summary['steps']} steps in {summary['seconds']:.0f} s: validation {summary['val']:.4f}{est}"


def cmd_train(args: argparse.Namespace) -> int:
    from swapgraph import api

    cfg = api.TrainConfig(a=Path(args.a), b=Path(args.b), init=Path(args.init) if args.init else None,
                          **_run_settings(args))
    summary = api.train(cfg)
    print(_trained(summary, "trained"))
    print(f"model: {cfg.out}  (loss plot {cfg.out / 'loss.png'}, previews {cfg.out / 'previews'})")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from swapgraph import api

    cfg = api.PretrainConfig(facesets=[Path(f) for f in args.facesets], **_run_settings(args))
    summary = api.pretrain(cfg)
    print(_trained(summary, "pretrained"))
    print(f"base: {cfg.out}  (loss plot {cfg.out / 'loss.png'}, previews {cfg.out / 'previews'}); start a pair "
          f"from it with swapgraph train --init {cfg.out}")
    return 0


def cmd_qc(args: argparse.Namespace) -> int:
    from swapgraph.qc.runner import qc_paths, run_qc

    report = run_qc(Path(args.output), Path(args.source), Path(args.out) if args.out else None, args.workers,
                    args.frames, Path(args.a) if args.a else None, Path(args.b) if args.b else None)
    path = qc_paths(Path(args.output), Path(args.out) if args.out else None)
    for key, value in report["summary"].items():
        print(f"{key:<18} {'-' if value is None else f'{value:.4f}'}")
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from swapgraph.timeline.pull import pull

    bar = _FrameBar(not args.quiet and not args.plan, Path(args.timeline).name)

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    try:
        result = pull(Path(args.timeline), select=args.select, graph=Path(args.graph), out=Path(args.out),
                      handles=args.handles, overrides=args.set, media_root=Path(args.media_root) if args.media_root
                      else None, rate=args.rate, plate=args.plate, node=args.node, plan_only=args.plan,
                      workers=args.workers, scheduler=args.scheduler, chunk_size=args.chunk_size,
                      batch_size=args.batch_size, device=args.device, progress=bar, log=log,
                      warn=lambda line: print(f"warning: {line}", file=sys.stderr))
    finally:
        bar.close()
    if args.plan:
        print(f"# swapgraph pull: {len(result.shots)} shots in {len(result.renders)} renders; pull list "
              f"{result.pull_json}")
        for plan in result.plans:
            for line in plan_commands(plan):
                print(line)
        return 0
    if not args.quiet:
        for s in (s for s in result.shots if not s.hidden_by):
            print(f"{s.name}: {s.clip!r} on {s.track}, record {s.record_tc[0]}-{s.record_tc[1]}, source "
                  f"{s.source_tc[0]}-{s.source_tc[1]} of {Path(s.media).name} (handles {s.handles_tc[0]}-"
                  f"{s.handles_tc[1]}) -> {s.render}")
        print(f"done: {len(result.renders)} renders ({len(result.rendered)} rendered, {len(result.skipped)} "
              "already complete)")
        print(f"wrote {result.pull_json}")
        print(f"wrote {result.pull_csv}")
    return 0


def cmd_conform(args: argparse.Namespace) -> int:
    from swapgraph.timeline.conform import conform

    result = conform(Path(args.timeline), pull_dir=Path(args.pull), out=Path(args.out), edl_style=args.edl_style)
    for name in result.hidden:
        print(f"warning: shot {name} is covered by a higher track for its whole length; the swapgraph track "
              "leaves it out", file=sys.stderr)
    skipped = f" ({len(result.not_rendered)} hidden at the pull, not rendered)" if result.not_rendered else ""
    print(f"done: {result.clips} clips of {result.shots} shots on the swapgraph track{skipped}")
    print(f"wrote {result.out}")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from swapgraph.editor.server import serve

    try:
        serve(Path(args.graph) if args.graph else None, Path(args.root) if args.root else None, host=args.host,
              port=args.port, open_browser=not args.no_browser)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how the editor's server stops
    return 0


def print_swap(result) -> None:
    """What ``swapgraph swap`` (and the demo) made: what ran, the QC summary, every file."""
    ran = [name for name, how in result.stages.items() if how != "skipped"]
    print(f"stages: {', '.join(f'{name} {how}' for name, how in result.stages.items())}"
          + ("" if ran else " (nothing to do: the same inputs and params as before)"))
    summary = ", ".join(f"{k} {v:.3f}" for k, v in result.qc.get("summary", {}).items() if v is not None)
    print(f"QC: {summary}")
    print("files:")
    for label, path in result.files:
        print(f"  {label + ':':<42} {path}")


def cmd_swap(args: argparse.Namespace) -> int:
    from swapgraph.pipeline.swap import swap

    if args.until is not None and args.until != "plateau":
        raise UsageError(f"--until {args.until}: the only rule is 'plateau'")
    result = swap(Path(args.plate), Path(args.face), Path(args.out), work=Path(args.work) if args.work else None,
                  preset=args.preset, steps=args.steps, minutes=args.minutes, until_plateau=args.until == "plateau",
                  graph=Path(args.graph) if args.graph else None, overrides=args.set, frames=_parse_range(args.frames),
                  device=args.device, bank=args.bank, seed=args.seed, checkpoint_every=args.checkpoint_every,
                  init=Path(args.init) if args.init else None, quiet=args.quiet, say=print)
    print_swap(result)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from swapgraph.demo.run import run_demo

    print_swap(run_demo(Path(args.out), quiet=args.quiet, steps=args.steps))
    return 0


def _training_args(sp: argparse.ArgumentParser, out_help: str) -> None:
    """The flags ``train`` and ``pretrain`` share; their defaults come from ``RunSettings``."""
    from swapgraph.api.training import LR_DECAYS, PRESET_NAMES, TrainConfig

    recipe = TrainConfig.__dataclass_fields__  # the defaults live in one place: RunSettings
    sp.add_argument("--preset", default=recipe["preset"].default, help=f"one of {', '.join(PRESET_NAMES)} "
                                                                      "(default %(default)s)")
    sp.add_argument("--out", required=True, help=out_help)
    sp.add_argument("--bucket", help="train only on faces of this orientation: frontal, three_quarter, side")
    sp.add_argument("--batch-size", type=int, help="faces per identity per step (default 16)")
    sp.add_argument("--batch-schedule", metavar="STEP:N,...", help="batch size by step, e.g. 0:8,2000:16,5000:64")
    sp.add_argument("--steps", type=int, help="stop after this many steps")
    sp.add_argument("--minutes", type=float, help="stop after this much training time")
    sp.add_argument("--until", metavar="plateau", help="stop when training half as long again would gain under 1%% of the validation "
                                                    "score (95%% bound), not before step 3000")
    sp.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    sp.add_argument("--force", action="store_true", help="replace the earlier run in --out (only the files the "
                                                         "trainer wrote there; anything else in it is refused)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    sp.add_argument("--lr", type=float, default=recipe["lr"].default, help="Adam learning rate (default %(default)s)")
    sp.add_argument("--lr-warmup", type=int, default=recipe["lr_warmup"].default, metavar="STEPS",
                    help="rise linearly to --lr over this many steps, at most a tenth of --steps (default %(default)s)")
    sp.add_argument("--lr-decay", choices=LR_DECAYS, default=recipe["lr_decay"].default,
                    help="cosine: down to a tenth of --lr over --steps or --minutes (default %(default)s)")
    sp.add_argument("--beta1", type=float, default=recipe["beta1"].default, help="Adam's beta1 (default %(default)s)")
    sp.add_argument("--icnr", action=argparse.BooleanOptionalAction, default=recipe["icnr"].default,
                    help="ICNR initialisation of the pixel-shuffle upscalers, against the checkerboard "
                         "(default %(default)s)")
    sp.add_argument("--mask", action="store_true", help="also learn a face mask channel")
    sp.add_argument("--render", type=int, default=recipe["render"].default, metavar="PX",
                    help="central pixels of the facesets' 256 px crops the model renders (default %(default)s; the "
                         "facesets' coverage, 160, renders brows to lips only); the mask and corrections stay inside")
    sp.add_argument("--feature-weight", type=float, default=recipe["feature_weight"].default, metavar="W",
                    help="eyes, brows and lips count 1+W times in the loss (default %(default)s)")
    sp.add_argument("--detail-weight", type=float, default=recipe["detail_weight"].default, metavar="W",
                    help="weight of a loss on the finest detail band, against a blurry face (default %(default)s)")
    sp.add_argument("--warp", type=float, default=recipe["warp"].default,
                    help="random warp strength of the input, 0 = none (default %(default)s)")
    sp.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    sp.add_argument("--val-every", type=int, default=50, metavar="K", help="validate every K steps")
    sp.add_argument("--preview-every", type=int, default=200, metavar="K", help="preview grid every K steps")
    sp.add_argument("--checkpoint-every", type=int, default=100, metavar="K", help="checkpoint every K steps")
    sp.add_argument("--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    from swapgraph.api import PRESET_NAMES

    p = _Parser(prog="swapgraph", description="Face-swapped video shots from typed node graphs.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def graph_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("graph", help="graph file (JSON)")
        sp.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="override a param (typed by its schema); repeatable")

    sp = sub.add_parser("run", help="run a graph headless")
    graph_args(sp)
    sp.add_argument("--frames", metavar="A-B", help="render frames A to B (inclusive, 0-based)")
    sp.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where nodes run (default: the graph's)")
    sp.add_argument("--batch-size", type=int, metavar="N", help="frames per batch (default: the graph's)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    sp.add_argument("--manifest", metavar="FILE", help="after the run, write a farm chunk manifest (graph hash, "
                                                         "params, frame range, output hash) for swapgraph join")
    sp.add_argument("--render-frames", metavar="A-B", help="with --manifest: the whole render's frames, recorded so "
                                                            "join can tell when a chunk is missing")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("render", help="render a shot in frame-range chunks on Dask (or --plan them for a farm)")
    graph_args(sp)
    sp.add_argument("--out", required=True, help="the joined output file (.mp4, .mov, .mkv)")
    sp.add_argument("--chunk-size", type=int, default=None, metavar="N",
                    help="frames per chunk (default 96; rounded up to whole batches)")
    where = sp.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="K", help="local Dask workers (default 1; 0: in this process, without Dask)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler (tcp://host:8786) whose workers "
                                                               "run the chunks; GPU workers carry resource GPU=1")
    sp.add_argument("--plan", action="store_true", help="print one swapgraph run command per chunk and the join "
                                                        "command, run nothing")
    sp.add_argument("--frames", metavar="A-B", help="render only these frames of the shot")
    sp.add_argument("--node", help="the Encode node to render (when the graph has several)")
    sp.add_argument("--chunks", metavar="DIR", help="folder for chunk files and manifests (default OUT.chunks)")
    sp.add_argument("--retries", type=int, default=2, metavar="N", help="times a failed chunk is retried")
    sp.add_argument("--clean", action="store_true", help="after a successful join, delete the chunk files the manifests name "
                    "(and the chunks folder when nothing else is left in it)")
    sp.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where nodes run (default: the graph's)")
    sp.add_argument("--batch-size", type=int, metavar="N", help="frames per batch (default: the graph's)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    sp.set_defaults(func=cmd_render)

    sp = sub.add_parser("join", help="join finished chunks (their manifests' folder) into one file with the audio")
    sp.add_argument("chunks", help="the chunks folder (OUT.chunks, as the render plan names it)")
    sp.add_argument("--out", required=True, help="the joined output file")
    sp.set_defaults(func=cmd_join)

    sp = sub.add_parser("validate", help="check a graph without running it")
    graph_args(sp)
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("preview", help="render one node's output on one frame as a PNG")
    graph_args(sp)
    sp.add_argument("--node", required=True, help="node id")
    sp.add_argument("--frame", required=True, type=int, help="frame number (0-based)")
    sp.add_argument("-o", "--output", help="PNG to write (default GRAPH.NODE.FRAME.png)")
    sp.add_argument("--device", choices=["auto", "cpu", "cuda"])
    sp.set_defaults(func=cmd_preview)

    sp = sub.add_parser("nodes", help="list node types, or describe one")
    sp.add_argument("type", nargs="?")
    sp.set_defaults(func=cmd_nodes)

    sp = sub.add_parser("schema", help="print the JSON Schema of graph files")
    sp.set_defaults(func=cmd_schema)

    sp = sub.add_parser("faceset", help="inspect and filter facesets")
    fsub = sp.add_subparsers(dest="faceset_command", required=True, parser_class=_Parser)
    fp = fsub.add_parser("stats", help="faces per bucket, blur and yaw histograms")
    fp.add_argument("dir", help="faceset folder")
    fp.set_defaults(func=cmd_faceset_stats)
    fp = fsub.add_parser("filter", help="copy the faces that pass into a new faceset")
    fp.add_argument("dir", help="faceset folder")
    fp.add_argument("--out", required=True, help="new faceset folder")
    fp.add_argument("--bucket", action="append", default=[], help="keep this orientation bucket (repeatable or "
                                                                   "comma-separated): frontal, three_quarter, side")
    fp.add_argument("--min-sharpness", type=float, default=0.0, metavar="X", help="lowest blur score kept")
    fp.add_argument("--min-change", type=float, default=0.02, metavar="D",
                    help="drop a face that differs from the last kept face of its track by less than this "
                         "(mean absolute difference of 16x16 thumbnails, 0..1); 0 keeps duplicates")
    fp.set_defaults(func=cmd_faceset_filter)

    sp = sub.add_parser("train", help="train a swap model on two facesets")
    sp.add_argument("--a", required=True, help="faceset of identity A (the plate's face)")
    sp.add_argument("--b", required=True, help="faceset of identity B (the face to put on it)")
    sp.add_argument("--init", metavar="BASE", help="start from a base (swapgraph pretrain): its encoder, and its "
                                                   "decoder for both decoders; same preset, mask and render")
    _training_args(sp, "model folder (weights, model.json, log, plot, previews)")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("pretrain", help="train a base (the encoder and one generic decoder) on the faces of many "
                                         "people, for pairs to start from (train --init)")
    sp.add_argument("facesets", nargs="+", metavar="FACESET", help="facesets of many people, pooled: each step "
                                                                   "samples across them")
    _training_args(sp, "the base's model folder (weights, model.json, log, plot, previews)")
    sp.set_defaults(func=cmd_pretrain)
    sp = sub.add_parser("qc", help="measure a swapped shot against its plate")
    sp.add_argument("output", help="the swapped video")
    sp.add_argument("--source", required=True, help="the plate it was made from")
    sp.add_argument("--out", help="folder for the report (default: beside the output)")
    sp.add_argument("--frames", metavar="A-B",
                    help="the plate's frames the output was rendered from (default: from the output's sidecar)")
    sp.add_argument("--a", metavar="FACESET", help="faceset of the plate's person, for the identity measure "
                    "(default: the facesets the output's model was trained on)")
    sp.add_argument("--b", metavar="FACESET", help="faceset of the person put on, for the identity measure")
    sp.add_argument("--workers", type=int, default=0, help="face-detection processes (0: one per core)")
    sp.set_defaults(func=cmd_qc)

    sp = sub.add_parser("pull", help="render the clips a cut selects (OTIO, EDL, FCP7 XML, AAF) with a graph, "
                                     "with a pull list")
    sp.add_argument("timeline", help="the cut: .otio, .edl, .xml (FCP7 / Premiere) or .aaf")
    sp.add_argument("--select", action="append", required=True, metavar="RULE",
                    help="marker:NAME (a marker's name or colour), track:NAME or clip:REGEX; repeatable (a clip "
                         "any rule selects is pulled)")
    sp.add_argument("--graph", required=True, help="the graph each shot is rendered with (its Decode reads the "
                                                   "media, its Encode writes the render)")
    sp.add_argument("--out", required=True, help="folder for pull.json, pull.csv, renders/ and chunks/")
    sp.add_argument("--handles", type=int, default=0, metavar="N", help="extra frames either side of each clip, "
                                                                        "where the media has them (default 0)")
    sp.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                    help="override a param of the graph; repeatable")
    sp.add_argument("--media-root", metavar="DIR", help="folder to find media in: relative paths, moved files, "
                                                        "and EDL clips named by clip or reel name")
    sp.add_argument("--rate", metavar="FPS", help="an EDL's frame rate: 25, 29.97, 23.976, 30000/1001, ... (default: "
                                               "its first media's)")
    sp.add_argument("--plate", metavar="NODE", help="the Decode node that reads the media (default: the only one)")
    sp.add_argument("--node", metavar="NODE", help="the Encode node to render (default: the only one)")
    sp.add_argument("--plan", action="store_true", help="write the pull list and print the render commands for a "
                                                        "farm manager, render nothing")
    where = sp.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="K", help="local Dask workers (default 1; 0: in this process, without Dask)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler whose workers render the chunks")
    sp.add_argument("--chunk-size", type=int, metavar="N", help="frames per chunk (default 96)")
    sp.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where nodes run (default: the graph's)")
    sp.add_argument("--batch-size", type=int, metavar="N", help="frames per batch (default: the graph's)")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_pull)

    sp = sub.add_parser("conform", help="a copy of the cut with the pulled renders on a new top track, swapgraph")
    sp.add_argument("timeline", help="the cut the pull read")
    sp.add_argument("--pull", required=True, metavar="DIR", help="the folder swapgraph pull wrote")
    sp.add_argument("--out", required=True, help="the new timeline: .otio, .edl, .xml or .aaf (an EDL holds the "
                                                 "swapgraph track alone)")
    sp.add_argument("--edl-style", default="avid", choices=["avid", "premiere"], help="the EDL dialect (default avid)")
    sp.set_defaults(func=cmd_conform)

    sp = sub.add_parser("edit", help="edit, check, preview and run a graph in the browser (a local server)")
    sp.add_argument("graph", nargs="?", help="graph file to open (JSON); default: none")
    sp.add_argument("--root", help="folder the editor may read and write (default: the graph's folder, or here)")
    sp.add_argument("--port", type=int, default=0, help="port to listen on (default 0: a free one)")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sp.add_argument("--no-browser", action="store_true", help="print the URL, do not open a browser")
    sp.set_defaults(func=cmd_edit)

    sp = sub.add_parser("swap", help="two clips to a finished shot: extract, train, convert, QC (resumable)")
    sp.add_argument("plate", help="the shot whose face is replaced (a video file)")
    sp.add_argument("face", help="the face to put on it: a clip, a folder of photos, or a faceset")
    sp.add_argument("--out", required=True, help="the swapped shot (.mp4, .mov, .mkv)")
    sp.add_argument("--work", metavar="DIR", help="folder for facesets, models and stage keys (default: OUT's name "
                                                  "with .work, beside it)")
    sp.add_argument("--preset", default="lite-64", help=f"one of {', '.join(PRESET_NAMES)} (default %(default)s)")
    stop = sp.add_mutually_exclusive_group()
    stop.add_argument("--minutes", type=float, help="train this long (a bank's models share it)")
    stop.add_argument("--steps", type=int, help="train this many steps (each model of a bank)")
    stop.add_argument("--until", metavar="plateau", help="train until the plateau rule stops (the default, at most "
                                                         "two hours)")
    sp.add_argument("--init", metavar="BASE", help="start training from a base (swapgraph pretrain) of --preset; "
                                                   "another base trains again")
    sp.add_argument("--graph", help="the conversion graph (default graphs/swap.json)")
    sp.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                    help="override a param of the conversion graph; repeatable")
    sp.add_argument("--frames", metavar="A-B", help="only these frames of the plate (extracted and converted)")
    sp.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    sp.add_argument("--bank", choices=["never", "auto", "always"], default="auto",
                    help="one model per orientation bucket: when the plate spans several and the face material "
                         "covers them (auto, the default), always, or never")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--checkpoint-every", type=int, default=100, metavar="K", help="checkpoint training every K "
                                                                                   "steps (a kill resumes from it)")
    sp.add_argument("--quiet", action="store_true", help="no progress lines (the summary is still printed)")
    sp.set_defaults(func=cmd_swap)

    from swapgraph.demo import DEMO_STEPS

    sp = sub.add_parser("demo", help="make a shot from a packaged photo and run the pipeline on it")
    sp.add_argument("--out", default="demo-output", help="folder for the demo's files")
    sp.add_argument("--steps", type=int, default=DEMO_STEPS, help="training steps (the demo's time is mostly these; "
                                                                   "default %(default)s, under 5 minutes on two cores)")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    from swapgraph import api

    api.stop_on_signals()  # SIGTERM stops like Ctrl-C: cleanly, nothing left at final paths
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "batch_size", None) is not None and not 1 <= args.batch_size <= 1024:
            raise UsageError(f"--batch-size {args.batch_size}: expected 1..1024")
        return args.func(args)
    except (ArgumentError, api.training.NamesSettings) as exc:  # the API names its keyword; the CLI shows the flag
        if debug:
            traceback.print_exc()
        print(f"error: {exc.as_flag()}", file=sys.stderr)
        return exc.exit_code
    except GraphValidationError as exc:
        if debug:
            traceback.print_exc()
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return 2
    except SwapgraphError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: cancelled", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an environment failure: one line, traceback with --debug
        if debug:
            traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    """The ``swapgraph`` program: ``main``, then exit with its code.

    A cancelled command has removed what it wrote by the time ``main`` returns; it then
    leaves at once (``os._exit``), without the interpreter's teardown, where a native
    thread pool still winding down after the interrupt (seen as ``terminate called
    without an active exception``) could abort the process and turn exit code 130 into
    a crash."""
    code = main()
    if code == 130:
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    entry()
