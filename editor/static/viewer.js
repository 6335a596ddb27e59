// The viewer: any node's output at a frame of its shot, as `swapgraph preview` draws it.
// A scrubber over the shot's frames (from /api/shot) with frame number and timecode,
// previous/next frame, the image from POST /api/preview and the time it took.

import { request, ServerError } from "./connection.js";

/** "25/1" or "30000/1001" as a number of frames per second. */
export function parseFps(text) {
  const [num, den] = String(text || "").split("/").map(Number);
  const fps = den ? num / den : num;
  return Number.isFinite(fps) && fps > 0 ? fps : null;
}

/** HH:MM:SS:FF of a 0-based frame at `fps` (non-drop-frame, counted at the rounded rate). */
export function timecode(frame, fps) {
  const rate = Math.max(1, Math.round(fps || 25));
  const seconds = Math.floor(frame / rate);
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}:${pad(frame % rate)}`;
}

export class Viewer {
  constructor(root, model, { documentOf, pathOf }) {
    this.model = model;
    this.documentOf = documentOf;
    this.pathOf = pathOf;
    const $ = (id) => root.querySelector(`#${id}`);
    this.nodeSelect = $("view-node");
    this.outputSelect = $("view-output");
    this.scrubber = $("frame");
    this.frameLabel = $("frame-number");
    this.timecodeLabel = $("timecode");
    this.image = $("viewer-image");
    this.status = $("viewer-status");
    this.placeholder = $("viewer-empty");
    this.node = null;
    this.output = null;
    this.frame = 0;
    this.frames = null;
    this.fps = null;
    this.url = null;
    this.sequence = 0;
    this.busy = false;
    this.again = false;
    this.timer = null;
    this.nodeSelect.addEventListener("change", () => this.setNode(this.nodeSelect.value || null));
    this.outputSelect.addEventListener("change", () => {
      this.output = this.outputSelect.value || null;
      this.remember();
      this.preview();
    });
    this.scrubber.addEventListener("input", () => this.setFrame(Number(this.scrubber.value)));
    $("prev-frame").addEventListener("click", () => this.step(-1));
    $("next-frame").addEventListener("click", () => this.step(1));
  }

  /** The node list changed (load, add, rename, delete): refill the menu, keep what is viewed. */
  refreshNodes() {
    const ids = Object.keys(this.model.nodes).filter((id) => {
      const type = this.model.typeOf(id);
      return type && Object.keys(type.outputs || {}).length;
    });
    this.nodeSelect.replaceChildren(new Option("(none)", ""), ...ids.map((id) => new Option(id, id)));
    if (this.node && !ids.includes(this.node)) {
      // a rename keeps the viewer on the node
      const renamed = this.model.viewer && ids.includes(this.model.viewer.node) ? this.model.viewer.node : null;
      this.node = renamed;
      if (!renamed) this.clear("Choose a node to view.");
    }
    this.nodeSelect.value = this.node || "";
    this.fillOutputs();
  }

  /** Restore the viewer of a just-opened document (its `ui.viewer`). */
  restore(state) {
    this.frames = null;
    this.fps = null;
    this.frame = 0;
    this.scrubber.max = "0";
    this.scrubber.value = "0";
    this.frameLabel.textContent = "0";
    this.timecodeLabel.textContent = timecode(0, null);
    this.node = null;
    this.refreshNodes();
    if (state && state.node && this.model.node(state.node)) {
      this.frame = Number.isInteger(state.frame) ? state.frame : 0;
      this.setNode(state.node, state.output || null, false);
    } else {
      this.node = null;
      this.nodeSelect.value = "";
      this.fillOutputs();
      this.clear("Choose a node to view.");
    }
  }

  fillOutputs() {
    const type = this.node && this.model.typeOf(this.node);
    const outputs = Object.keys((type && type.outputs) || {});
    this.outputSelect.replaceChildren(...outputs.map((name) => new Option(name, name)));
    if (!outputs.includes(this.output)) this.output = outputs[0] || null;
    this.outputSelect.value = this.output || "";
    this.outputSelect.disabled = outputs.length < 2;
  }

  setNode(id, output = null, remember = true) {
    this.node = id && this.model.node(id) ? id : null;
    this.output = output;
    this.nodeSelect.value = this.node || "";
    this.fillOutputs();
    if (remember) this.remember();
    if (!this.node) {
      this.clear("Choose a node to view.");
      return;
    }
    this.loadShot();
  }

  remember() {
    this.model.setViewer(this.node ? { node: this.node, output: this.output, frame: this.frame } : null);
  }

  clear(message) {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    this.image.removeAttribute("src");
    this.image.hidden = true;
    this.placeholder.hidden = false;
    this.placeholder.textContent = message;
    this.status.textContent = "";
  }

  /** The frames and rate of the source the viewed node reads, then the preview. */
  async loadShot() {
    const node = this.node;
    this.status.textContent = "reading the shot…";
    try {
      const shot = await request("/api/shot", {
        json: { document: this.documentOf(), path: this.pathOf() || null, node }, quiet: [400, 404, 422],
      });
      if (node !== this.node) return;
      this.frames = Number.isInteger(shot.frames) ? shot.frames : null;
      this.fps = parseFps(shot.fps);
      this.scrubber.max = String(Math.max((this.frames || 1) - 1, 0));
      this.scrubber.title = shot.source ? `frames of ${shot.source}` : "";
    } catch (exc) {
      if (node !== this.node) return;
      this.frames = null;
      this.clear(exc instanceof ServerError ? exc.message : String(exc));
      return;
    }
    this.setFrame(this.frame);
  }

  setFrame(frame) {
    const last = this.frames ? this.frames - 1 : Math.max(frame, 0);
    this.frame = Math.min(Math.max(0, Math.round(frame) || 0), last);
    this.scrubber.value = String(this.frame);
    this.frameLabel.textContent = `${this.frame}${this.frames ? ` / ${this.frames - 1}` : ""}`;
    this.timecodeLabel.textContent = timecode(this.frame, this.fps);
    this.remember();
    this.preview();
  }

  step(delta) {
    if (this.node) this.setFrame(this.frame + delta);
  }

  /** The graph changed: its preview may have (a param, a link, the source). */
  documentChanged() {
    if (!this.node) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.loadShot(), 300);
  }

  /** One preview request at a time; while one runs, the newest frame waits for it. */
  async preview() {
    if (!this.node) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    const { node, output, frame } = this;
    const sequence = ++this.sequence;
    const started = performance.now();
    this.status.textContent = `previewing ${node} at frame ${frame}…`;
    try {
      const response = await request("/api/preview", {
        json: { document: this.documentOf(), path: this.pathOf() || null, node, output, frame }, as: "blob", quiet: [422],
      });
      const blob = await response.blob();
      if (sequence === this.sequence && node === this.node) {
        if (this.url) URL.revokeObjectURL(this.url);
        this.url = URL.createObjectURL(blob);
        this.image.src = this.url;
        this.image.alt = `${node}.${output || ""} at frame ${frame}`;
        this.image.dataset.frame = response.headers.get("X-Swapgraph-Frame") || String(frame);
        this.image.dataset.node = node;
        this.image.hidden = false;
        this.placeholder.hidden = true;
        const ms = Math.round(performance.now() - started);
        this.status.textContent = `${node}.${response.headers.get("X-Swapgraph-Output") || output || ""} · frame ${frame} · ${ms} ms`;
      }
    } catch (exc) {
      if (node === this.node) this.clear(exc instanceof ServerError ? exc.message : String(exc));
    } finally {
      this.busy = false;
      if (this.again) {
        this.again = false;
        this.preview();
      }
    }
  }
}
