// Run and Render from the page over the WebSocket: a frame range, progress (frames,
// frames/s, ETA; chunks for a render), Cancel, and the outputs and QC summary when done.

import { socket, showError } from "./connection.js";

function duration(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}` : `${Math.floor(s / 60)}:${pad(s % 60)}`;
}

function chunkText(chunks) {
  if (chunks === undefined || chunks === null) return "";
  if (typeof chunks === "object") return ` · chunks ${chunks.done ?? "?"}/${chunks.total ?? "?"}`;
  return ` · ${chunks} chunk${chunks === 1 ? "" : "s"}`;
}

/** The output path of the graph's first Encode, relative to the root: a render's default target. */
function defaultRenderOut(model, graphPath) {
  const folder = graphPath && !graphPath.startsWith("preset:") ? graphPath.split("/").slice(0, -1) : [];
  for (const node of Object.values(model.nodes)) {
    const path = node.params && node.params.path;
    if (node.type === "Encode" && typeof path === "string") {
      const parts = [...folder];
      for (const part of path.split("/")) {
        if (part === "..") parts.pop();
        else if (part && part !== ".") parts.push(part);
      }
      return parts.join("/");
    }
  }
  return "";
}

export class Runner {
  constructor(root, model, { documentOf, pathOf }) {
    this.model = model;
    this.documentOf = documentOf;
    this.pathOf = pathOf;
    const $ = (id) => root.querySelector(`#${id}`);
    this.range = $("run-range");
    this.out = $("render-out");
    this.chunk = $("render-chunk");
    this.runButton = $("run-button");
    this.renderButton = $("render-button");
    this.cancelButton = $("cancel-button");
    this.bar = $("progress");
    this.status = $("run-status");
    this.result = $("run-result");
    this.job = null;
    this.runButton.addEventListener("click", () => this.start("run"));
    this.renderButton.addEventListener("click", () => this.start("render"));
    this.cancelButton.addEventListener("click", () => this.cancel());
    socket.on("progress", (m) => this.mine(m) && this.progress(m));
    socket.on("done", (m) => this.mine(m) && this.done(m));
    socket.on("cancelled", (m) => this.mine(m) && this.finish("Cancelled: nothing was written at the final paths."));
    socket.on("error", (m) => {
      showError(m.message);
      if (this.mine(m)) this.finish(`Failed: ${m.message}`);
    });
    socket.on("closed", () => {
      if (this.job) this.finish("The server stopped during the job; its state is unknown.");
    });
    this.setBusy(false);
  }

  mine(message) {
    return this.job !== null && message.id === this.job;
  }

  setBusy(busy) {
    this.runButton.disabled = busy;
    this.renderButton.disabled = busy;
    this.cancelButton.disabled = !busy;
    this.bar.hidden = !busy && !this.bar.value;
  }

  refreshRenderDefault() {
    this.out.placeholder = defaultRenderOut(this.model, this.pathOf()) || "out/render.mp4";
  }

  start(op) {
    if (this.job) return;
    const range = this.range.value.trim();
    if (range && !/^\d+(-\d*)?$/.test(range)) {
      this.status.textContent = "A frame range is A-B, A- or A (0-based, inclusive).";
      this.range.focus();
      return;
    }
    const id = `${op}-${Date.now().toString(36)}`;
    const message = { op, id, document: this.documentOf(), path: this.pathOf() || null };
    if (op === "run") {
      message.frames = range || null;
    } else {
      this.refreshRenderDefault();
      message.out = this.out.value.trim() || this.out.placeholder;
      message.chunk_size = Number(this.chunk.value) || Number(this.chunk.placeholder);
      message.workers = 1;
      message.frames = range || null;
    }
    if (!socket.send(message)) return;
    this.job = id;
    this.result.replaceChildren();
    this.result.hidden = true;
    this.bar.removeAttribute("value");
    this.bar.hidden = false;
    this.status.textContent = `${op === "run" ? "Running" : "Rendering"}…`;
    this.setBusy(true);
  }

  cancel() {
    if (!this.job) return;
    socket.send({ op: "cancel", id: this.job });
    this.status.textContent = "Cancelling…";
  }

  progress(m) {
    if (m.total) {
      this.bar.max = m.total;
      this.bar.value = m.done;
    }
    const fps = Number.isFinite(m.fps) ? `${m.fps.toFixed(1)} frames/s` : "– frames/s";
    this.status.textContent = `${m.done}${m.total ? `/${m.total}` : ""} frames · ${fps} · ETA ${duration(m.eta)}${chunkText(m.chunks)}`;
  }

  done(m) {
    const outputs = (m.outputs || []).join(", ") || "no files";
    this.finish(`Done: ${m.frames ?? "?"} frames in ${duration(m.seconds)} → ${outputs}`);
    if (this.bar.max) this.bar.value = this.bar.max;
    this.bar.hidden = false;
    const list = document.createElement("dl");
    const add = (key, value) => {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
      list.append(dt, dd);
    };
    for (const path of m.outputs || []) add("output", path);
    if (m.qc && typeof m.qc === "object") for (const [key, value] of Object.entries(m.qc)) add(key, value);
    else add("QC", "no QC summary for this graph");
    this.result.replaceChildren(list);
    this.result.hidden = false;
  }

  finish(text) {
    this.job = null;
    this.status.textContent = text;
    this.setBusy(false);
  }
}
