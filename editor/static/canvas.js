// The node canvas (SVG): nodes with their ports coloured by port type, wires dragged from an
// output port to an input port (a wire the port types refuse is refused while drawn), move
// by the title, pan by the background, zoom by the wheel, select, rename by double-click.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 190;
const HEADER = 26;
const ROW = 20;
const SNAP = 18; // screen pixels within which a dragged wire reaches a port

const PORT_COLOURS = { Frames: "#5b9bf0", Audio: "#58c47a", Faces: "#e8c547", FaceCrops: "#ee8d3e", Masks: "#c9c9c9" };

/** A port type's colour: a fixed one for the built-in types, a stable hue for a plugin's. */
export function portColour(type) {
  if (PORT_COLOURS[type]) return PORT_COLOURS[type];
  let hash = 0;
  for (const ch of String(type)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360}, 55%, 62%)`;
}

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

export class Canvas {
  /**
   * `svg`: the <svg> element; `model`: the GraphModel; `portTypes`: /api/nodes's port_types;
   * `onSelect(selection)`, `notify(message)`: the page's hooks.
   */
  constructor(svg, model, { portTypes, onSelect, notify }) {
    this.svg = svg;
    this.model = model;
    this.portTypes = portTypes;
    this.onSelect = onSelect;
    this.notify = notify;
    this.view = { x: 0, y: 0, k: 1 };
    this.selection = null;
    this.issuesByNode = new Map();
    this.viewport = el("g", { class: "viewport" }, svg);
    this.wireLayer = el("g", { class: "wires" }, this.viewport);
    this.nodeLayer = el("g", { class: "nodes" }, this.viewport);
    this.tempWire = el("path", { class: "temp-wire", "data-testid": "temp-wire" }, this.viewport);
    this.tempWire.style.display = "none";
    this.drag = null;
    this.nodeEls = new Map();
    this.wireEls = new Map();
    svg.addEventListener("pointerdown", (e) => this.pointerDown(e));
    svg.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    svg.addEventListener("dblclick", (e) => this.doubleClick(e));
    window.addEventListener("pointermove", (e) => this.pointerMove(e));
    window.addEventListener("pointerup", (e) => this.pointerUp(e));
    this.applyView();
  }

  fits(outType, inType) {
    return (this.portTypes[outType] || [outType]).includes(inType);
  }

  // --- geometry -------------------------------------------------------------------------

  nodeHeight(type) {
    const rows = Math.max(Object.keys(type.inputs || {}).length, Object.keys(type.outputs || {}).length, 1);
    return HEADER + rows * ROW + 8;
  }

  portPosition(id, dir, port) {
    const pos = this.model.positions[id] || { x: 0, y: 0 };
    const type = this.model.typeOf(id);
    const names = Object.keys((type && (dir === "in" ? type.inputs : type.outputs)) || {});
    const row = Math.max(names.indexOf(port), 0);
    return { x: pos.x + (dir === "in" ? 0 : WIDTH), y: pos.y + HEADER + row * ROW + ROW / 2 + 4 };
  }

  clientToWorld(clientX, clientY) {
    const rect = this.svg.getBoundingClientRect();
    return { x: (clientX - rect.left - this.view.x) / this.view.k, y: (clientY - rect.top - this.view.y) / this.view.k };
  }

  /** Where a new node goes: near the middle of the view, in the first place free of other nodes. */
  worldCentre() {
    const rect = this.svg.getBoundingClientRect();
    const start = this.clientToWorld(rect.left + rect.width / 2 - WIDTH / 2, rect.top + rect.height / 4);
    const boxes = Object.keys(this.model.nodes).map((id) => {
      const p = this.model.positions[id];
      const type = this.model.typeOf(id);
      return { x: p.x, y: p.y, h: type ? this.nodeHeight(type) : HEADER };
    });
    const free = (x, y) => boxes.every((b) => x + WIDTH + 20 < b.x || b.x + WIDTH + 20 < x || y + 110 < b.y || b.y + b.h + 20 < y);
    for (let i = 0; i < 400; i++) {
      const column = Math.floor(i / 10); // columns tried: the middle, then right and left of it in turn
      const x = start.x + (column % 2 ? 1 : -1) * Math.ceil(column / 2) * (WIDTH + 40);
      const y = start.y + (i % 10) * 40;
      if (free(x, y)) return { x, y };
    }
    return start;
  }

  applyView() {
    const { x, y, k } = this.view;
    this.viewport.setAttribute("transform", `translate(${x},${y}) scale(${k})`);
  }

  /** Zoom and pan so that every node is in view. */
  fit() {
    const ids = Object.keys(this.model.nodes);
    const rect = this.svg.getBoundingClientRect();
    if (!ids.length || !rect.width) {
      this.view = { x: 0, y: 0, k: 1 };
      this.applyView();
      return;
    }
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const id of ids) {
      const p = this.model.positions[id];
      const type = this.model.typeOf(id);
      x0 = Math.min(x0, p.x);
      y0 = Math.min(y0, p.y);
      x1 = Math.max(x1, p.x + WIDTH);
      y1 = Math.max(y1, p.y + (type ? this.nodeHeight(type) : HEADER));
    }
    const margin = 30;
    const k = Math.min(1.2, (rect.width - 2 * margin) / (x1 - x0), (rect.height - 2 * margin) / (y1 - y0));
    this.view = { k, x: (rect.width - (x1 - x0) * k) / 2 - x0 * k, y: (rect.height - (y1 - y0) * k) / 2 - y0 * k };
    this.applyView();
  }

  // --- drawing --------------------------------------------------------------------------

  // Elements are kept and updated in place (keyed by node id and by link), so that a
  // change or a validation answer never replaces the element under the pointer.

  render() {
    const seen = new Set();
    for (const id of Object.keys(this.model.nodes)) {
      seen.add(id);
      const typeName = this.model.node(id).type;
      let entry = this.nodeEls.get(id);
      if (!entry || entry.typeName !== typeName) {
        if (entry) entry.g.remove();
        entry = { g: this.buildNode(id), typeName };
        this.nodeEls.set(id, entry);
      }
      this.updateNode(id, entry.g);
    }
    for (const [id, entry] of this.nodeEls) {
      if (!seen.has(id)) {
        entry.g.remove();
        this.nodeEls.delete(id);
      }
    }
    this.drawWires();
  }

  /** A node's box, title and ports: what only its id and type decide. */
  buildNode(id) {
    const node = this.model.node(id);
    const type = this.model.types[node.type] || { inputs: {}, outputs: {}, category: "?" };
    const g = el("g", { class: "node", "data-testid": `node-${id}`, "data-node": id }, this.nodeLayer);
    el("title", {}, g).textContent = `${id} (${node.type})`;
    el("rect", { class: "body", width: WIDTH, height: this.nodeHeight(type), rx: 5 }, g);
    const header = el("g", { class: "node-header", "data-testid": `title-${id}` }, g);
    el("rect", { class: "header", width: WIDTH, height: HEADER, rx: 5 }, header);
    el("text", { class: "title", x: 10, y: 17 }, header).textContent = id;
    el("text", { class: "type-name", x: WIDTH - 10, y: 17, "text-anchor": "end" }, header).textContent = node.type;
    const drawPorts = (ports, dir) => {
      Object.entries(ports || {}).forEach(([port, decl], row) => {
        const cy = HEADER + row * ROW + ROW / 2 + 4;
        const optional = dir === "in" && !decl.required;
        const circle = el("circle", {
          class: `port ${dir}${optional ? " optional" : ""}`, cx: dir === "in" ? 0 : WIDTH, cy, r: 6,
          fill: portColour(decl.type), "data-testid": `port-${id}-${dir}-${port}`,
          "data-node": id, "data-port": port, "data-dir": dir, "data-type": decl.type,
        }, g);
        el("title", {}, circle).textContent = `${port}: ${decl.type}${optional ? " (optional)" : ""}${decl.doc ? ` — ${decl.doc}` : ""}`;
        el("text", {
          class: "port-label", x: dir === "in" ? 12 : WIDTH - 12, y: cy + 4, "text-anchor": dir === "in" ? "start" : "end",
        }, g).textContent = port;
      });
    };
    drawPorts(type.inputs, "in");
    drawPorts(type.outputs, "out");
    return g;
  }

  /** A node's place, selection, issues (outline, badge, ports) and linked inputs. */
  updateNode(id, g) {
    const node = this.model.node(id);
    const pos = this.model.positions[id];
    const issues = this.issuesByNode.get(id) || [];
    const sel = this.selection || {};
    g.setAttribute("transform", `translate(${pos.x},${pos.y})`);
    g.classList.toggle("selected", sel.kind === "node" && sel.id === id);
    g.classList.toggle("has-issue", issues.length > 0);
    g.classList.toggle("unknown", !this.model.types[node.type]);
    const issuePorts = new Set(issues.filter((i) => i.port).map((i) => i.port));
    for (const port of g.querySelectorAll(".port")) {
      port.classList.toggle("port-issue", issuePorts.has(port.dataset.port));
      port.classList.toggle("linked", port.dataset.dir === "in" && (node.inputs || {})[port.dataset.port] !== undefined);
    }
    const text = issues.map((i) => `${i.problem}${i.fix ? `; fix: ${i.fix}` : ""}`).join("\n");
    let badge = g.querySelector(".badge");
    if (!issues.length) {
      if (badge) badge.remove();
      return;
    }
    if (!badge) {
      badge = el("g", { class: "badge", "data-testid": `badge-${id}`, transform: `translate(${WIDTH - 2},-2)` }, g);
      el("circle", { r: 9 }, badge);
      el("text", { y: 4, "text-anchor": "middle" }, badge);
      el("title", {}, badge);
    }
    badge.querySelector("text").textContent = String(issues.length);
    badge.querySelector("title").textContent = text;
  }

  wirePath(a, b) {
    const dx = Math.max(40, Math.abs(b.x - a.x) / 2);
    return `M${a.x},${a.y} C${a.x + dx},${a.y} ${b.x - dx},${b.y} ${b.x},${b.y}`;
  }

  drawWires() {
    const seen = new Set();
    const sel = this.selection || {};
    for (const link of this.model.links()) {
      const key = `wire-${link.src}.${link.srcPort}-${link.dst}.${link.dstPort}`;
      seen.add(key);
      const srcType = this.model.typeOf(link.src);
      const dstType = this.model.typeOf(link.dst);
      const out = srcType && (srcType.outputs || {})[link.srcPort];
      const inp = dstType && (dstType.inputs || {})[link.dstPort];
      let g = this.wireEls.get(key);
      if (!g) {
        g = el("g", { class: "wire", "data-testid": key, "data-dst": link.dst, "data-port": link.dstPort }, this.wireLayer);
        el("path", { class: "wire-hit" }, g);
        el("path", { class: "wire-line" }, g);
        el("title", {}, g);
        this.wireEls.set(key, g);
      }
      const bad = !out || !inp || !this.fits(out.type, inp.type);
      const d = this.wirePath(this.portPosition(link.src, "out", link.srcPort), this.portPosition(link.dst, "in", link.dstPort));
      g.classList.toggle("wire-bad", bad);
      g.classList.toggle("selected", sel.kind === "wire" && sel.dst === link.dst && sel.port === link.dstPort);
      g.querySelector(".wire-hit").setAttribute("d", d);
      const line = g.querySelector(".wire-line");
      line.setAttribute("d", d);
      line.setAttribute("stroke", out ? portColour(out.type) : "#888");
      g.querySelector("title").textContent = `${link.src}.${link.srcPort} → ${link.dst}.${link.dstPort}${bad ? " (types do not fit)" : ""}`;
    }
    for (const [key, g] of this.wireEls) {
      if (!seen.has(key)) {
        g.remove();
        this.wireEls.delete(key);
      }
    }
  }

  setIssues(issues) {
    this.issuesByNode = new Map();
    for (const issue of issues) {
      if (!issue.node) continue;
      if (!this.issuesByNode.has(issue.node)) this.issuesByNode.set(issue.node, []);
      this.issuesByNode.get(issue.node).push(issue);
    }
    for (const [id, entry] of this.nodeEls) if (this.model.node(id)) this.updateNode(id, entry.g);
  }

  select(selection) {
    this.selection = selection;
    const sel = selection || {};
    for (const g of this.nodeLayer.children) g.classList.toggle("selected", sel.kind === "node" && g.dataset.node === sel.id);
    for (const g of this.wireLayer.children) {
      g.classList.toggle("selected", sel.kind === "wire" && g.dataset.dst === sel.dst && g.dataset.port === sel.port);
    }
    this.onSelect(selection);
  }

  // --- pointer interaction --------------------------------------------------------------

  pointerDown(e) {
    if (e.button !== 0) return;
    const port = e.target.closest("[data-dir]");
    const nodeEl = e.target.closest(".node");
    const wire = e.target.closest(".wire");
    if (port) {
      e.preventDefault();
      this.startWire(port, e);
    } else if (nodeEl) {
      const id = nodeEl.dataset.node;
      if (!this.selection || this.selection.kind !== "node" || this.selection.id !== id) this.select({ kind: "node", id });
      if (e.target.closest(".node-header")) {
        e.preventDefault();
        const start = this.clientToWorld(e.clientX, e.clientY);
        const pos = this.model.positions[id];
        this.drag = { kind: "node", id, dx: start.x - pos.x, dy: start.y - pos.y, moved: false };
      }
    } else if (wire) {
      this.select({ kind: "wire", dst: wire.dataset.dst, port: wire.dataset.port });
    } else {
      e.preventDefault();
      this.drag = { kind: "pan", x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y, moved: false };
    }
  }

  /** From an output port: a new wire. From a linked input port: pick that wire up from its source. */
  startWire(port, e) {
    let src = port.dataset.node;
    let srcPort = port.dataset.port;
    if (port.dataset.dir === "in") {
      const ref = (this.model.node(src).inputs || {})[srcPort];
      if (ref === undefined) {
        this.notify("drag a wire from an output port (right side) to an input port");
        return;
      }
      const dst = src;
      const dstPort = srcPort;
      [src, srcPort] = [ref.slice(0, ref.indexOf(".")), ref.slice(ref.indexOf(".") + 1)];
      if (!this.model.node(src)) return;
      this.model.disconnect(dst, dstPort);
    }
    const srcType = this.model.typeOf(src);
    const out = srcType && srcType.outputs[srcPort];
    if (!out) return;
    this.drag = { kind: "wire", src, srcPort, type: out.type, target: null };
    this.svg.classList.add("drawing");
    for (const input of this.svg.querySelectorAll("[data-dir=in]")) {
      input.classList.toggle("can-drop", this.refusal(input) === null);
      input.classList.toggle("cannot-drop", this.refusal(input) !== null);
    }
    this.tempWire.setAttribute("stroke", portColour(out.type));
    this.tempWire.style.display = "";
    this.moveWire(e);
  }

  /** Why the dragged wire cannot end at input port element `input`, or null when it can. */
  refusal(input) {
    const { src, srcPort, type } = this.drag;
    const dst = input.dataset.node;
    const from = `'${src}.${srcPort}' (${type})`;
    const to = `'${dst}.${input.dataset.port}' (${input.dataset.type})`;
    if (dst === src) return `${from} cannot feed its own node`;
    if (!this.fits(type, input.dataset.type)) return `${from} does not fit input ${to}: it takes ${input.dataset.type}`;
    if (this.model.reaches(src, dst)) return `${from} → ${to} would make a cycle`;
    return null;
  }

  nearestInput(clientX, clientY) {
    let best = null;
    let bestDistance = SNAP;
    for (const input of this.svg.querySelectorAll("[data-dir=in]")) {
      const r = input.getBoundingClientRect();
      const distance = Math.hypot(r.left + r.width / 2 - clientX, r.top + r.height / 2 - clientY);
      if (distance <= Math.max(bestDistance, r.width / 2)) {
        best = input;
        bestDistance = distance;
      }
    }
    return best;
  }

  moveWire(e) {
    const a = this.portPosition(this.drag.src, "out", this.drag.srcPort);
    const target = this.nearestInput(e.clientX, e.clientY);
    this.drag.target = target;
    let b = this.clientToWorld(e.clientX, e.clientY);
    const refused = target ? this.refusal(target) : null;
    if (target && !refused) b = this.portPosition(target.dataset.node, "in", target.dataset.port);
    this.tempWire.classList.toggle("refused", Boolean(refused));
    this.tempWire.setAttribute("d", this.wirePath(a, b));
  }

  pointerMove(e) {
    const drag = this.drag;
    if (!drag) return;
    if (drag.kind === "wire") {
      this.moveWire(e);
    } else if (drag.kind === "node") {
      const p = this.clientToWorld(e.clientX, e.clientY);
      this.model.positions[drag.id] = { x: Math.round(p.x - drag.dx), y: Math.round(p.y - drag.dy) };
      drag.moved = true;
      const g = this.nodeLayer.querySelector(`[data-node="${CSS.escape(drag.id)}"]`);
      if (g) g.setAttribute("transform", `translate(${this.model.positions[drag.id].x},${this.model.positions[drag.id].y})`);
      this.drawWires();
    } else if (drag.kind === "pan") {
      this.view.x = drag.vx + e.clientX - drag.x;
      this.view.y = drag.vy + e.clientY - drag.y;
      drag.moved = drag.moved || Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3;
      this.applyView();
    }
  }

  pointerUp(e) {
    const drag = this.drag;
    if (!drag) return;
    this.drag = null;
    if (drag.kind === "wire") {
      this.svg.classList.remove("drawing");
      this.tempWire.style.display = "none";
      this.tempWire.classList.remove("refused");
      for (const input of this.svg.querySelectorAll(".can-drop, .cannot-drop")) input.classList.remove("can-drop", "cannot-drop");
      const target = this.nearestInput(e.clientX, e.clientY);
      if (target) {
        this.drag = drag;
        const refused = this.refusal(target);
        this.drag = null;
        if (refused) this.notify(`wire refused: ${refused}`);
        else this.model.connect(drag.src, drag.srcPort, target.dataset.node, target.dataset.port);
      }
      this.render();
    } else if (drag.kind === "node" && drag.moved) {
      const p = this.model.positions[drag.id];
      this.model.moveNode(drag.id, p.x, p.y);
    } else if (drag.kind === "pan" && !drag.moved && this.selection) {
      this.select(null);
    }
  }

  wheel(e) {
    e.preventDefault();
    const rect = this.svg.getBoundingClientRect();
    const k = Math.min(3, Math.max(0.2, this.view.k * Math.exp(-e.deltaY * 0.0015)));
    const mx = e.clientX - rect.left;
    const my = e.clientY - rect.top;
    this.view.x = mx - ((mx - this.view.x) * k) / this.view.k;
    this.view.y = my - ((my - this.view.y) * k) / this.view.k;
    this.view.k = k;
    this.applyView();
  }

  doubleClick(e) {
    const header = e.target.closest(".node-header");
    if (header) this.startRename(header.closest(".node").dataset.node);
  }

  /** An input over the node's title: Enter renames, Escape (or leaving it unchanged) keeps the name. */
  startRename(id) {
    const title = this.nodeLayer.querySelector(`[data-node="${CSS.escape(id)}"] .header`);
    if (!title) return;
    const box = title.getBoundingClientRect();
    const host = this.svg.parentElement.getBoundingClientRect();
    const input = document.createElement("input");
    input.className = "rename";
    input.value = id;
    input.setAttribute("aria-label", "Node name");
    input.setAttribute("data-testid", "rename");
    Object.assign(input.style, {
      left: `${box.left - host.left}px`, top: `${box.top - host.top}px`, width: `${Math.max(box.width, 120)}px`,
    });
    this.svg.parentElement.appendChild(input);
    input.focus();
    input.select();
    let done = false;
    const finish = (commit) => {
      if (done) return;
      done = true;
      input.remove();
      if (!commit) return;
      const error = this.model.renameNode(id, input.value);
      if (error) this.notify(`rename refused: ${error}`);
      else if (input.value.trim() !== id) this.select({ kind: "node", id: input.value.trim() });
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") finish(true);
      else if (e.key === "Escape") finish(false);
      e.stopPropagation();
    });
    input.addEventListener("blur", () => finish(true));
  }
}
