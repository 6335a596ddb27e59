// swapgraph edit: the page. Wires the modules together: graph.js (the model), canvas.js,
// palette.js, panel.js, validation.js, viewer.js, run.js, files.js, connection.js.
//
// What tests may rely on (Playwright: get_by_test_id / get_by_role / get_by_label):
//
// test ids
//   node-<id>                  a node's box (SVG <g>); its title bar is title-<id> (drag it
//                              to move, double-click it to rename: input labelled "Node name")
//   port-<id>-in-<port>        an input port (SVG circle); data-type holds its port type
//   port-<id>-out-<port>       an output port; drag from it to an input port to link them
//   wire-<src>.<port>-<dst>.<port>   a link (SVG <g>; class wire-bad when the types do not fit)
//   badge-<id>                 the issue badge on a node with issues (class has-issue on node-<id>)
//   palette-<Type>             a palette entry: click adds a node in view, drag drops it on the canvas
//   param-<name>               the selected node's param input (also labelled by <name>)
//   param-issue-<name>         the validator's message under that param
//   node-device                the selected node's device menu
//   issue                      one issue in the list of all issues (data-node/-port/-param set)
//   issue-summary              "no issues", "2 issues", "checking…"
//   viewer-image               the preview <img> (a blob: URL; data-frame, data-node)
//   viewer-status              node.output · frame N · T ms, or why there is no image
//   frame-number, timecode     the viewer's frame ("10 / 119") and timecode (HH:MM:SS:FF)
//   progress                   the run's <progress> (value = frames done, max = total)
//   run-status, run-result     progress text (frames, frames/s, ETA), then outputs and QC summary
//   error-bar                  a server error's one line (role alert)
//   connection-banner          "Server stopped, reconnecting…" (role status) while the socket is down
//   notice                     other messages: saved, restored unsaved changes, refused wires
//   unsaved                    shown while the document differs from the file
//   graph-path                 the open graph's path (input labelled "Graph file")
//   canvas                     the SVG
//   file-<name>, preset-<name> entries of the Open / Browse dialog
//
// regions (role region, by name): Viewer, Graph, Params (its heading is the selected node's
//   id, then its type), Issues, Run; the palette is the complementary "Node types".
// error-bar, connection-banner and notice share one row of fixed height, so a message
// never moves the canvas under the pointer; canvas elements are updated in place.
//
// buttons (role button, by name): New, Open…, Save, Run, Render, Cancel, Delete, Duplicate,
//   Fit, View (in the param panel), Previous, Next (frames), Browse… (path params),
//   and in the file dialog: Parent folder, Load, Close; Discard changes (in the notice after a restore)
// labels: Graph file, range (the run's frame range, A-B), render to, chunk size,
//   view node, view output, frame (the scrubber, a range input), Node name, device,
//   Location (the file dialog's path field), Filter node types, and each param by its name.
//   Labels match as substrings unless exact=True: get_by_label("frame", exact=True) stays
//   unambiguous when Decode's "frames" param is in the panel.
//
// New nodes are named after their type in lower case (resize, resize2, ...). A wire whose
// port types do not fit is refused while it is drawn (notice says why); only a document
// opened with one shows it (class wire-bad). Keys: Delete/Backspace removes the selected
// node or wire, Ctrl+D duplicates, Ctrl+S saves, ←/→ step the viewer a frame.
// The page reads `token` (and `graph`, the path to open) from its URL's query, and sets
// <body data-ready="true"> once the node types are loaded and the first graph is shown.

import { GraphModel, sameJSON } from "./graph.js";
import { Canvas } from "./canvas.js";
import { buildPalette } from "./palette.js";
import { Panel } from "./panel.js";
import { Validator } from "./validation.js";
import { Viewer } from "./viewer.js";
import { Runner } from "./run.js";
import { FileBrowser, UnsavedStore, loadGraph, saveGraph } from "./files.js";
import { request, socket, clearError, ServerError } from "./connection.js";

const $ = (id) => document.getElementById(id);

const state = { path: "", readOnly: false, saved: null, session: null };
let model, canvas, panel, validator, viewer, runner, browser, unsaved;

function notify(message, action = null) {
  const box = $("notice");
  const line = box.querySelector(".message");
  line.textContent = message;
  line.title = message;
  const button = $("notice-action");
  button.hidden = !action;
  if (action) {
    button.textContent = action.label;
    button.onclick = () => {
      box.hidden = true;
      action.run();
    };
  }
  box.hidden = false;
}

function documentOf() {
  return model.toDocument();
}

function pathOf() {
  return state.path;
}

function isDirty() {
  if (state.saved === null) return Object.keys(model.nodes).length > 0;
  return !sameJSON(model.toDocument(), state.saved);
}

function updateTitle() {
  const dirty = isDirty();
  const name = state.path || "untitled";
  document.title = `${dirty ? "● " : ""}${name}${state.readOnly ? " (read-only)" : ""} — swapgraph edit`;
  $("unsaved").hidden = !dirty;
  return dirty;
}

function keepUnsaved() {
  if (updateTitle()) unsaved.put(state.path, model.toDocument());
  else unsaved.drop(state.path);
}

function setPath(path, readOnly) {
  state.path = path;
  state.readOnly = readOnly;
  $("graph-path").value = path;
  const url = new URL(location.href);
  if (path) url.searchParams.set("graph", path);
  else url.searchParams.delete("graph");
  history.replaceState(null, "", url);
  runner.refreshRenderDefault();
}

/** Show a document just opened (or restored): fit the view, restore the viewer, check it. */
function showDocument(document, restoredFrom = null) {
  canvas.selection = null;
  model.load(document);
  panel.show(null);
  requestAnimationFrame(() => canvas.fit());
  viewer.restore(model.viewer);
  updateTitle();
  if (restoredFrom) {
    notify(`Restored unsaved changes to ${state.path || "the untitled graph"} (${restoredFrom}).`, {
      label: "Discard changes",
      run: () => {
        unsaved.drop(state.path);
        showDocument(state.saved || { version: 1, nodes: {} });
      },
    });
  }
}

async function openGraph(path) {
  let answer;
  try {
    answer = await loadGraph(path);
  } catch (_) {
    return false;
  }
  clearError();
  setPath(answer.path, Boolean(answer.read_only));
  state.saved = answer.document;
  const kept = unsaved.get(answer.path);
  if (kept && !sameJSON(kept.document, answer.document)) showDocument(kept.document, new Date(kept.time).toLocaleString());
  else showDocument(answer.document);
  return true;
}

function newGraph() {
  setPath("", false);
  state.saved = null;
  const kept = unsaved.get("");
  if (kept) showDocument(kept.document, new Date(kept.time).toLocaleString());
  else showDocument({ version: 1, nodes: {} });
}

async function save() {
  const path = $("graph-path").value.trim();
  if (!path || path.startsWith("preset:")) {
    const field = $("graph-path");
    if (path.startsWith("preset:")) field.value = path.slice("preset:".length);
    notify("Presets open read-only and a new graph has no file yet: give a path under the root in Graph file, then Save.");
    field.focus();
    field.select();
    return;
  }
  const document = model.toDocument();
  let answer;
  try {
    answer = await saveGraph(path, document);
  } catch (_) {
    return;
  }
  unsaved.drop(state.path);
  unsaved.drop(answer.path);
  setPath(answer.path, false);
  state.saved = document;
  updateTitle();
  notify(answer.written ? `Saved ${answer.path}.` : `${answer.path} is unchanged: nothing written.`);
}

function deleteSelection() {
  const sel = canvas.selection;
  if (!sel) return;
  if (sel.kind === "node") {
    canvas.selection = null;
    model.removeNode(sel.id);
    panel.show(null);
  } else if (sel.kind === "wire") {
    canvas.selection = null;
    model.disconnect(sel.dst, sel.port);
  }
}

function duplicateSelection() {
  const sel = canvas.selection;
  if (!sel || sel.kind !== "node") return;
  const copy = model.duplicateNode(sel.id);
  if (copy) canvas.select({ kind: "node", id: copy });
}

function addNode(type, clientX, clientY) {
  const at = clientX === undefined ? canvas.worldCentre() : canvas.clientToWorld(clientX, clientY);
  const id = model.addNode(type, at.x, at.y);
  canvas.select({ kind: "node", id });
}

function editing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function onKey(e) {
  if (document.querySelector("dialog[open]")) return;
  const ctrl = e.ctrlKey || e.metaKey;
  if (ctrl && e.key.toLowerCase() === "s") {
    e.preventDefault();
    save();
    return;
  }
  if (editing(e.target)) return;
  if (e.key === "Delete" || e.key === "Backspace") {
    e.preventDefault();
    deleteSelection();
  } else if (ctrl && e.key.toLowerCase() === "d") {
    e.preventDefault();
    duplicateSelection();
  } else if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
    e.preventDefault();
    viewer.step(e.key === "ArrowLeft" ? -1 : 1);
  }
}

async function main() {
  let session, nodes;
  try {
    [session, nodes] = await Promise.all([request("/api/session"), request("/api/nodes")]);
  } catch (exc) {
    $("canvas-status").textContent = `cannot start: ${exc instanceof ServerError ? exc.message : exc}`;
    socket.connect();
    socket.on("reconnected", () => location.reload());
    return;
  }
  state.session = session;
  unsaved = new UnsavedStore(session.root);
  model = new GraphModel(nodes.types);
  browser = new FileBrowser($("file-dialog"));
  canvas = new Canvas($("canvas"), model, {
    portTypes: nodes.port_types || {},
    onSelect: (sel) => panel.show(sel && sel.kind === "node" ? sel.id : null),
    notify,
  });
  panel = new Panel($("panel"), model, {
    browse: (title) => browser.choose({ title }),
    graphPath: pathOf,
    view: (id) => viewer.setNode(id),
  });
  validator = new Validator($("issue-list"), $("issue-summary"), {
    documentOf, pathOf,
    show: (issues) => {
      canvas.setIssues(issues);
      panel.setIssues(issues);
    },
    select: (id) => canvas.select({ kind: "node", id }),
  });
  viewer = new Viewer($("viewer"), model, { documentOf, pathOf });
  runner = new Runner(document, model, { documentOf, pathOf });
  buildPalette($("palette"), nodes.types, addNode, $("canvas"));

  model.onChange((kind) => {
    canvas.render();
    if (kind === "structure" || kind === "load") {
      viewer.refreshNodes();
      if (panel.id && !model.node(panel.id)) panel.show(null);
      else if (kind === "structure") panel.show(panel.id);
    }
    if (kind !== "layout") {
      validator.schedule();
      if (kind !== "load") viewer.documentChanged();
    }
    runner.refreshRenderDefault();
    if (kind !== "load") keepUnsaved();
  });

  $("new-button").addEventListener("click", newGraph);
  $("open-button").addEventListener("click", async () => {
    const path = await browser.choose({ title: "Open graph", graphs: true, presets: session.presets || [] });
    if (path) openGraph(path);
  });
  $("save-button").addEventListener("click", save);
  $("graph-path").addEventListener("keydown", (e) => {
    if (e.key === "Enter") save();
  });
  $("delete-button").addEventListener("click", deleteSelection);
  $("duplicate-button").addEventListener("click", duplicateSelection);
  $("fit-button").addEventListener("click", () => canvas.fit());
  $("error-bar").querySelector("button").addEventListener("click", clearError);
  $("notice").querySelector(".dismiss").addEventListener("click", () => { $("notice").hidden = true; });
  document.addEventListener("keydown", onKey);
  socket.on("reconnected", () => validator.schedule());
  socket.connect();

  const wanted = new URLSearchParams(location.search).get("graph") || session.graph;
  if (!wanted || !(await openGraph(wanted))) newGraph();
  document.body.dataset.ready = "true";
}

main();
