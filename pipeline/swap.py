"""``swapgraph swap PLATE FACE --out OUT``: two clips to a finished shot in one call.

Stages, each skipped when its result exists for the same inputs and params (keyed by the
content hashes of the files and the params, never by file names; the keys live in the
work folder's ``swapgraph-work.json``):

1. extract the plate's faceset (A) and the face material's (B): FACE is a clip, a folder
   of photos, or a faceset;
2. train one model, or a bank of one model per orientation bucket when the plate's faces
   span several buckets and the face material covers them, from scratch or from a base
   (``init``: its weights' hash is part of the stage's key); a run killed mid-way resumes
   from its checkpoint;
3. convert the plate with the graph (``graphs/swap.json`` by default);
4. QC the result against the plate.

A changed param redoes its stage and the ones after it, nothing before.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from swapgraph import api
from swapgraph.farm.manifests import sha256_file
from swapgraph.nodes.ports import BUCKETS
from swapgraph.qc.runner import qc_paths, run_qc
from swapgraph.runtime.errors import ArgumentError, Cancelled, GraphValidationError, SwapgraphError, UsageError
from swapgraph.runtime.files import can_write, write_json_atomic
from swapgraph.runtime.provenance import sidecar_path
from swapgraph.training.data import min_faces
from swapgraph.training.pretrained import check_fits, read_base

WORK_FILE = "swapgraph-work.json"
WORK_VERSION = 1
VAL_FACES = api.TrainConfig.__dataclass_fields__["val_faces"].default  # the faces training holds out
RENDER = api.TrainConfig.__dataclass_fields__["render"].default  # the square swap's models render
#: the recipe swap trains with (train's defaults): part of the training stage's key, so a
#: work folder trained by an earlier recipe trains again rather than being taken as done
RECIPE = {k: api.TrainConfig.__dataclass_fields__[k].default
          for k in ("lr", "lr_warmup", "lr_decay", "beta1", "icnr", "feature_weight", "detail_weight", "warp", "render")}
MIN_FACES = min_faces(VAL_FACES)  # what training needs, per identity (and per bucket for a bank)
SPAN_SHARE = 0.15  # a plate spans a bucket that holds at least this share of its faces
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_MINUTES = 120.0  # the cap on the default stop rule (until the plateau)
BANK_CHOICES = ("never", "auto", "always")


@dataclass
class SwapResult:
    out: Path
    work: Path
    facesets: dict[str, Path]
    counts: dict[str, dict[str, int]]
    models: dict[str, Path]  # bucket ("all" for one model) -> model folder
    model: Path  # what the graph's Swap node reads: a model folder or a bank
    qc: dict[str, Any]
    stages: dict[str, str] = field(default_factory=dict)  # stage -> "ran", "resumed" or "skipped"
    notes: list[str] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class Work:
    """The work folder: stage keys and cached content hashes, written whole after each change."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / WORK_FILE
        doc: dict[str, Any] = {}
        if self.path.is_file():
            try:
                doc = json.loads(self.path.read_text())
            except (OSError, ValueError):
                doc = {}
        if doc.get("version") != WORK_VERSION:
            doc = {}
        self.stages: dict[str, dict[str, Any]] = doc.get("stages", {})
        self.hashes: dict[str, list[Any]] = doc.get("hashes", {})

    def save(self) -> None:
        write_json_atomic(self.path, {"version": WORK_VERSION, "stages": self.stages, "hashes": self.hashes})

    def done(self, stage: str, key: str) -> bool:
        return self.stages.get(stage, {}).get("key") == key

    def record(self, stage: str, key: str, **facts: Any) -> None:
        self.stages[stage] = {"key": key, **facts}
        self.save()

    def forget(self, stage: str) -> None:
        if self.stages.pop(stage, None) is not None:
            self.save()

    def file_hash(self, path: Path) -> str:
        """SHA-256 of a file's content, cached by its size and modification time."""
        st = path.stat()
        cached = self.hashes.get(str(path))
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        digest = sha256_file(path)
        self.hashes[str(path)] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def content_hash(self, path: Path) -> str:
        """A file's hash, or a folder's: its files' names and hashes."""
        if path.is_file():
            return self.file_hash(path)
        return _digest(sorted((str(p.relative_to(path)), self.file_hash(p)) for p in path.rglob("*")
                              if p.is_file() and not p.name.startswith(".")))


def face_kind(face: Path) -> str:
    """``faceset``, ``photos`` or ``clip``; one line when FACE is none of them."""
    if not face.exists():
        raise ArgumentError("face", str(face), "not found; give a clip, a folder of photos or a faceset")
    if face.is_dir():
        if (face / "faces.jsonl").is_file():
            return "faceset"
        if any(p.suffix.lower() in PHOTO_SUFFIXES for p in face.iterdir()):
            return "photos"
        raise ArgumentError("face", str(face), "a folder with neither a faceset (faces.jsonl) nor photos "
                            f"({', '.join(PHOTO_SUFFIXES)}); give a clip, photos or a faceset")
    api.media_info(face)  # a video, or one line saying what is wrong with it
    return "clip"


def photos_clip(folder: Path, out: Path) -> Path:
    """The photos of ``folder`` as the frames of a lossless clip (each letterboxed onto the
    largest size), for the extraction graph; written whole or not at all."""
    import av
    import cv2
    import numpy as np

    from swapgraph.runtime.files import atomic_path

    images = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in PHOTO_SUFFIXES:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise UsageError(f"{p}: not a readable image; remove it or export it again")
            images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    h = max(i.shape[0] for i in images) + 1 & ~1
    w = max(i.shape[1] for i in images) + 1 & ~1
    with atomic_path(out) as temp:
        with av.open(str(temp), "w", format="matroska") as c:
            s = c.add_stream("ffv1", rate=1)
            s.width, s.height, s.pix_fmt = w, h, "bgr0"
            for img in images:
                canvas = np.zeros((h, w, 3), np.uint8)
                y, x = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
                canvas[y:y + img.shape[0], x:x + img.shape[1]] = img
                for packet in s.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="bgr0")):
                    c.mux(packet)
            for packet in s.encode():
                c.mux(packet)
    return out


def _extract_spec(clip: Path, dest: Path, photos: bool) -> api.GraphSpec:
    """graphs/extract.json on ``clip``; for photos without landmark smoothing (frames of
    different photos are no motion to smooth)."""
    path = api.presets()["extract.json"]
    doc = json.loads(path.read_text())
    if photos:
        doc["nodes"].pop("smooth")
        doc["nodes"]["crops"]["inputs"]["faces"] = "faces.faces"
    return api.load(doc, [f"plate.path={clip}", f"faceset.path={dest}"], path=path)


def bucket_counts(folder: Path) -> dict[str, int]:
    counts = Counter(api.faceset_buckets(folder))
    return {b: counts.get(b, 0) for b in BUCKETS}


def _describe(counts: dict[str, int]) -> str:
    return f"{sum(counts.values())} faces (" + ", ".join(f"{b} {n}" for b, n in counts.items()) + ")"


def plan_models(plate: dict[str, int], face: dict[str, int], bank: str) -> tuple[list[str | None], list[str]]:
    """The models to train (None: one on all faces; else one per bucket) and what to say.

    The plate spans a bucket holding at least 15% of its faces. A bucket model needs
    ``MIN_FACES`` faces of that bucket on both sides. ``auto`` trains a bank when two or
    more spanned buckets can be trained; ``always`` trains one for every bucket that can.
    """
    if bank not in BANK_CHOICES:
        raise ArgumentError("bank", bank, "expected never, auto or always")
    total = sum(plate.values()) or 1
    spanned = [b for b in BUCKETS if plate[b] and plate[b] >= SPAN_SHARE * total]
    notes = []
    for b in spanned:
        if face[b] < MIN_FACES:
            notes.append(f"the plate needs {b} faces ({plate[b]} of {total}), and the face material has "
                         f"{face[b]}: those faces get the nearest model, which will show; add {b} material")
    trainable = [b for b in spanned if face[b] >= MIN_FACES and plate[b] >= MIN_FACES]
    if bank == "never":
        return [None], notes
    if bank == "always" or len(trainable) >= 2:
        if not trainable:
            raise ArgumentError("bank", bank, f"no bucket has {MIN_FACES} faces on both sides (plate "
                                f"{_describe(plate)}, face {_describe(face)}); use bank never")
        notes.append(f"the plate spans {', '.join(f'{b} ({plate[b]})' for b in spanned)}: training one model per "
                     f"bucket, a bank of {', '.join(trainable)}")
        return list(trainable), notes
    if len(spanned) >= 2:
        notes.append(f"the plate spans {', '.join(spanned)}, but only {', '.join(trainable) or 'no bucket'} has "
                     f"{MIN_FACES} faces on both sides: training one model on all faces")
    return [None], notes


def _graph_ids(spec: api.GraphSpec) -> tuple[str, list[str], str]:
    """The graph's plate (its only Decode), its Swap nodes and its output (its only Encode)."""
    decodes, swaps, encodes = (spec.nodes_of_type(t) for t in ("Decode", "Swap", "Encode"))
    where = spec.path or "graph"
    if len(decodes) != 1 or len(encodes) != 1 or not swaps:
        raise UsageError(f"{where}: swap needs a graph with one Decode (the plate), one Encode (the output) and a "
                         f"Swap node; it has {len(decodes)}, {len(encodes)} and {len(swaps)}")
    return decodes[0], swaps, encodes[0]


def swap(plate: Path, face: Path, out: Path, *, work: Path | None = None, preset: str = "lite-64",
         steps: int | None = None, minutes: float | None = None, until_plateau: bool = False,
         graph: Path | None = None, overrides: Sequence[str] = (), frames: tuple[int, int | None] | None = None,
         device: str = "auto", bank: str = "auto", seed: int = 0, checkpoint_every: int = 100,
         init: Path | None = None, quiet: bool = False, say: Callable[[str], None] | None = None) -> SwapResult:
    """Extract, train, convert and QC: ``plate`` with ``face``'s identity, into ``out``.

    Stops training at ``steps``, ``minutes`` or the plateau, whichever comes first; with
    none given, at the plateau or after two hours. A bank's models share ``minutes``.
    ``init``: every model starts from this base (``swapgraph pretrain``, of ``preset``,
    rendering the default square without a mask); another base trains them again.
    Refusals (one line, exit 2) come before any training: an unwritable work folder, a
    plate or face material with no faces, or too few to train, a base that does not fit.
    """
    started = time.perf_counter()
    say = say or (lambda text: None)
    plate, face, out = Path(plate).resolve(), Path(face).resolve(), Path(out).resolve()
    work = Path(work).resolve() if work else work_folder_for(out)
    if bank not in BANK_CHOICES:
        raise ArgumentError("bank", bank, "expected never, auto or always")
    for flag, value in (("steps", steps), ("minutes", minutes)):
        if value is not None and not value > 0:
            raise ArgumentError(flag, str(value), "must be positive (an untrained model swaps no face)")
    if steps is None and minutes is None and not until_plateau:
        until_plateau, minutes = True, DEFAULT_MINUTES
    base = read_base(init) if init is not None else None
    if base is not None:  # swap's models render the default square without a mask: its base must too
        if base.info.mask or base.render != RENDER:
            raise ArgumentError("init", str(init), f"a base that renders {base.render} px"
                                f"{' with a mask channel' if base.info.mask else ''}; swap trains models that "
                                f"render {RENDER} px without a mask: give a base pretrained with the default render "
                                "and no mask")
        # the facesets' crop and coverage are the extraction's: the trainer checks them
        check_fits(base, preset=preset, mask=False, render=RENDER, crop=base.info.crop, coverage=base.info.coverage)
    graph = Path(graph).resolve() if graph else api.presets()["swap.json"]
    spec = api.load(graph, list(overrides))
    plate_node, swap_nodes, out_node = _graph_ids(spec)
    api.media_info(plate)  # a video, or one line
    # the graph and its overrides checked now, not after the training: all but the model, not made yet
    untrained = {f"node {n!r} (Swap) param 'model'" for n in swap_nodes}
    issues = [i for i in api.validate(spec.with_overrides([f"{plate_node}.path={plate}", f"{out_node}.path={out}"]),
                                      probe=False) if i.where not in untrained]
    if issues:
        raise GraphValidationError(issues)
    kind = face_kind(face)
    for what, folder in (("work", work), ("out", out.parent)):
        if not can_write(folder):
            raise ArgumentError(what, str(folder), "cannot write there (nor make it); choose a writable folder")
    problem = work_folder_problem(work, [plate, face, *([base.path] if base is not None else [])])
    if problem is not None:
        raise ArgumentError("work", str(work), problem)
    work.mkdir(parents=True, exist_ok=True)
    state = Work(work)
    result = SwapResult(out, work, {}, {}, {}, work, {})

    def stage(name: str, how: str) -> None:
        result.stages[name] = how

    def line(text: str) -> None:
        if not quiet:
            say(f"[{time.perf_counter() - started:5.0f} s] {text}")

    # 1. facesets
    plate_hash = state.content_hash(plate)
    extract_doc = json.loads(api.presets()["extract.json"].read_text())
    sides = {"plate": (plate, "clip"), "face": (face, kind)}
    keys: dict[str, str] = {}
    for side, (source, source_kind) in sides.items():
        if source_kind == "faceset":
            result.facesets[side] = source
            keys[side] = state.content_hash(source)
            stage(f"extract {side}", "skipped")
            continue
        dest = work / f"faces_{side}"
        key = _digest({"stage": "extract", "source": state.content_hash(source), "kind": source_kind,
                       "graph": extract_doc, "frames": frames if side == "plate" else None})
        keys[side] = key
        result.facesets[side] = dest
        if state.done(f"extract {side}", key) and (dest / "faces.jsonl").is_file():
            stage(f"extract {side}", "skipped")
            continue
        state.forget(f"extract {side}")
        shutil.rmtree(dest, ignore_errors=True)
        clip = photos_clip(source, work / "photos.mkv") if source_kind == "photos" else source
        extract = _extract_spec(clip, dest, source_kind == "photos")
        api.run(extract, frames=frames if side == "plate" else None, device=device)
        if side == "plate":
            first = (frames or (0, None))[0]
            try:
                api.preview(extract, "faces", first, output="faces").save(work / "preview_faces.png")
                api.preview(extract, "crops", first, output="crops").save(work / "preview_crops.png")
            except SwapgraphError:
                pass  # no face on that frame: the previews are a courtesy
        counts = result.counts[side] = bucket_counts(dest)
        if not sum(counts.values()):
            shutil.rmtree(dest, ignore_errors=True)
            what = "the plate" if side == "plate" else "the face material"
            raise UsageError(f"{source}: no face found in {what}; swapgraph swaps faces it can detect: give a clip or "
                             "photos where a face is visible (at least about 40 px high, not turned away)")
        state.record(f"extract {side}", key, faces=sum(counts.values()))
        stage(f"extract {side}", "ran")
    for side in sides:
        if side not in result.counts:  # extracted before: counted from its faceset
            result.counts[side] = bucket_counts(result.facesets[side])
        line(f"{side}: {_describe(result.counts[side])} in {result.facesets[side]}")
    for side, source in (("plate", plate), ("face", face)):
        n = sum(result.counts[side].values())
        if n < MIN_FACES:
            raise UsageError(f"{source}: {n} faces, too few to train (training needs {MIN_FACES}, {VAL_FACES} of "
                             "them held out for validation); give a longer clip or more photos")

    # 2. models
    buckets, notes = plan_models(result.counts["plate"], result.counts["face"], bank)
    result.notes += notes
    for note in notes:
        line(note)
    stop = {"steps": steps, "minutes": minutes / len(buckets) if minutes else None, "until_plateau": until_plateau}
    root = work / ("bank" if buckets != [None] else "model")
    if buckets != [None] and root.is_dir():  # buckets a former plan trained and this one does not
        for old in root.iterdir():
            if old.is_dir() and old.name not in buckets:
                shutil.rmtree(old)
    model_keys = {}
    for bucket in buckets:
        name = bucket or "all"
        dest = root / bucket if bucket else root
        key = _digest({"stage": "train", "a": keys["plate"], "b": keys["face"], "preset": preset, "stop": stop,
                       "seed": seed, "bucket": bucket, "bank": buckets, "recipe": RECIPE,
                       **({"init": base.sha256} if base is not None else {})})
        model_keys[name] = key
        result.models[name] = dest
        stage_name = f"train {name}"
        if state.done(stage_name, key) and (dest / "model.json").is_file():
            stage(stage_name, "skipped")
            continue
        intent = state.stages.get(f"training {name}", {}).get("key")
        resume = intent == key and (dest / "checkpoint").is_dir()
        if not resume:
            shutil.rmtree(dest, ignore_errors=True)
            state.record(f"training {name}", key)  # what the folder's checkpoint belongs to
        line(f"training {preset}" + (f" for bucket {bucket}" if bucket else "") + (" (resuming)" if resume else "")
             + (f" from the base {base.path}" if base is not None and not resume else ""))
        # a short run validates and previews often enough to draw its curve; a long one as train does
        cadence = {"val_every": max(10, steps // 6), "preview_every": max(25, steps // 3)} \
            if steps is not None and steps < 1200 else {}
        try:
            summary = api.train(api.TrainConfig(
                a=result.facesets["plate"], b=result.facesets["face"], out=dest, preset=preset, bucket=bucket,
                steps=steps, minutes=stop["minutes"], until_plateau=until_plateau, resume=resume, seed=seed,
                device=device, checkpoint_every=checkpoint_every, quiet=quiet, **cadence,
                init=None if resume or base is None else base.path), log=line)
        except Cancelled:
            raise Cancelled(f"swap cancelled while training {preset}" + (f" for bucket {bucket}" if bucket else "")
                            + f"; the checkpoint in {dest} keeps the training so far: the same swap command "
                            "resumes it") from None
        line(f"trained {name}: validation {summary['val']:.4f}"
             + (f"; {summary['estimate']}" if summary.get("estimate") else ""))
        state.record(stage_name, key, val=summary["val"], steps=summary.get("steps"))
        stage(stage_name, "resumed" if resume else "ran")
    result.model = root

    # 3. convert
    convert = spec.with_overrides([f"{plate_node}.path={plate}", f"{out_node}.path={out}",
                                   *(f"{n}.model={root}" for n in swap_nodes)])
    key = _digest({"stage": "convert", "models": model_keys, "graph": dict(spec.document), "overrides": list(overrides),
                   "plate": plate_hash, "frames": frames, "device": device})
    if state.done("convert", key) and out.is_file() and sidecar_path(out).is_file():
        stage("convert", "skipped")
    else:
        state.forget("convert")
        line(f"converting {plate.name} with {graph.name}")
        api.run(convert, frames=frames, device=device)
        state.record("convert", key)
        stage("convert", "ran")

    # 4. QC
    report_path = qc_paths(out, None)
    qc_key = _digest({"stage": "qc", "convert": key})
    if state.done("qc", qc_key) and report_path.is_file():
        result.qc = json.loads(report_path.read_text())
        stage("qc", "skipped")
    else:
        result.qc = run_qc(out, plate)
        state.record("qc", qc_key)
        stage("qc", "ran")

    result.files = [("plate", str(plate)), ("face material", str(face)),
                    ("facesets", f"{result.facesets['plate']}, {result.facesets['face']}")]
    if (work / "preview_faces.png").is_file():
        result.files.append(("previews of faces and crops", f"{work / 'preview_faces.png'}, {work / 'preview_crops.png'}"))
    for name, path in result.models.items():
        label = "model" if name == "all" else f"model ({name})"
        result.files += [(label, str(path)), (f"{label} loss plot", str(path / "loss.png")),
                         (f"{label} training preview", str(path / "preview.png"))]
        if any((path / "previews").glob("*.png")):
            result.files.append((f"{label} previews by step", str(path / "previews")))
    result.files += [("swapped shot (synthetic media)", str(out)), ("its sidecar", str(sidecar_path(out))),
                     ("QC report", f"{report_path} (+ .png)")]
    return result


def work_folder_problem(work: Path, inputs: Sequence[Path]) -> str | None:
    """Why ``work`` may not be swap's work folder, or None: it must be new, empty or an
    earlier swap's (its ``swapgraph-work.json``), and hold none of ``inputs``."""
    for given in inputs:
        if Path(given).resolve().is_relative_to(work):
            return f"{work} holds {given}; give swap a work folder of its own (--work, or leave it out)"
    if work.exists() and not work.is_dir():
        return f"{work} is a file; give swap a new or empty work folder"
    if work.is_dir() and not (work / WORK_FILE).is_file() and any(work.iterdir()):
        return (f"{work} holds files swapgraph did not write; give swap a new or empty work folder, or the one an "
                "earlier swap made")
    return None


def work_folder_for(out: Path) -> Path:
    """The default work folder: beside the output, named after it."""
    out = Path(out).resolve()
    return out.with_name(out.stem + ".work")


__all__ = ["MIN_FACES", "SwapResult", "face_kind", "plan_models", "swap", "work_folder_for"]
