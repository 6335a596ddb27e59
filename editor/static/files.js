// Files: the file browser dialog over /api/files (limited to the root by the server), opening
// a graph under the root or a preset, saving, and unsaved changes kept in localStorage per
// path so that a reload does not lose them.

import { request } from "./connection.js";

/** A <dialog> that lists the root's folders and files; resolves to a root-relative path or null. */
export class FileBrowser {
  constructor(dialog) {
    this.dialog = dialog;
    this.title = dialog.querySelector("#file-dialog-title");
    this.where = dialog.querySelector("#file-dialog-dir");
    this.list = dialog.querySelector("#file-dialog-list");
    this.presetBox = dialog.querySelector("#file-dialog-presets");
    this.location = dialog.querySelector("#file-location");
    this.dir = "";
    this.resolve = null;
    dialog.querySelector("#file-up").addEventListener("click", () => this.go(this.dir.split("/").slice(0, -1).join("/")));
    dialog.querySelector("#file-close").addEventListener("click", () => this.done(null));
    dialog.querySelector("#file-load").addEventListener("click", () => {
      const path = this.location.value.trim();
      if (path) this.done(path);
    });
    this.location.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && this.location.value.trim()) {
        e.preventDefault();
        this.done(this.location.value.trim());
      }
    });
    dialog.addEventListener("close", () => this.done(null));
  }

  /** `graphs`: list .json files only and offer the presets (`presets`: their names). */
  choose({ title, graphs = false, presets = [], dir = "" }) {
    this.done(null);
    this.graphs = graphs;
    this.title.textContent = title;
    this.presetBox.replaceChildren();
    this.presetBox.hidden = !graphs || !presets.length;
    if (graphs && presets.length) {
      const heading = document.createElement("h3");
      heading.textContent = "Presets (open read-only)";
      this.presetBox.appendChild(heading);
      for (const name of presets) {
        this.presetBox.appendChild(this.entry(`preset:${name}`, "preset", `preset-${name}`, () => this.done(`preset:${name}`)));
      }
    }
    this.location.value = "";
    this.dialog.showModal();
    this.go(dir);
    return new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  entry(text, kind, testId, action) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `file-entry ${kind}`;
    button.textContent = text;
    button.setAttribute("data-testid", testId);
    button.addEventListener("click", action);
    return button;
  }

  async go(dir) {
    this.dir = dir;
    this.where.textContent = `root/${dir}`;
    this.list.replaceChildren();
    let answer;
    try {
      answer = await request(`/api/files?dir=${encodeURIComponent(dir)}`);
    } catch (exc) {
      this.where.textContent = `root/${dir}: ${exc.message}`;
      return;
    }
    if (dir !== this.dir) return;
    const prefix = dir ? `${dir}/` : "";
    for (const item of answer.entries || []) {
      if (item.kind === "dir") {
        this.list.appendChild(this.entry(`${item.name}/`, "dir", `file-${item.name}`, () => this.go(prefix + item.name)));
      } else if (!this.graphs || item.name.endsWith(".json")) {
        const button = this.entry(item.name, "file", `file-${item.name}`, () => this.done(prefix + item.name));
        if (Number.isFinite(item.size)) button.title = `${item.size} bytes`;
        this.list.appendChild(button);
      }
    }
    if (!this.list.children.length) {
      const empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "Nothing here.";
      this.list.appendChild(empty);
    }
  }

  done(path) {
    const resolve = this.resolve;
    this.resolve = null;
    if (this.dialog.open) this.dialog.close();
    if (resolve) resolve(path);
  }
}

/** Unsaved documents by graph path (per server root), kept across reloads. */
export class UnsavedStore {
  constructor(root) {
    this.prefix = `swapgraph-unsaved:${root}:`;
  }

  get(path) {
    try {
      const value = JSON.parse(localStorage.getItem(this.prefix + (path || "")) || "null");
      return value && value.document ? value : null;
    } catch (_) {
      return null;
    }
  }

  put(path, document) {
    try {
      localStorage.setItem(this.prefix + (path || ""), JSON.stringify({ document, time: new Date().toISOString() }));
    } catch (_) { /* storage full or disabled: the page still works */ }
  }

  drop(path) {
    try {
      localStorage.removeItem(this.prefix + (path || ""));
    } catch (_) { /* as above */ }
  }
}

export async function loadGraph(path) {
  return request(`/api/graph?path=${encodeURIComponent(path)}`);
}

export async function saveGraph(path, document) {
  return request("/api/save", { json: { path, document } });
}
