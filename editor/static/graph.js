// The graph model: the graph file's document, kept as plain data, and the edits the page
// makes to it. Node positions and the viewer's state live in the document's optional `ui`
// object, which the engine ignores. A document opened and not edited serialises to itself,
// so saving it leaves the file as it was (no `ui` is added to a file that had none).

const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

/** Deep equality of JSON values, ignoring key order (as Python compares the documents). */
export function sameJSON(a, b) {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && sameJSON(a[k], b[k]));
}

/** "src.port" as [src, port]. */
export function splitRef(ref) {
  const dot = typeof ref === "string" ? ref.indexOf(".") : -1;
  return dot < 0 ? [ref, ""] : [ref.slice(0, dot), ref.slice(dot + 1)];
}

/** The non-null branch of a nullable param's schema, merged with its own description and default. */
export function paramShape(schema) {
  const branches = schema.anyOf || schema.oneOf;
  if (!branches) return { ...schema, nullable: false };
  const nonNull = branches.filter((b) => b.type !== "null");
  const base = nonNull.length === 1 ? nonNull[0] : { type: "string" };
  return { ...base, ...schema, anyOf: undefined, oneOf: undefined, type: base.type,
    nullable: nonNull.length < branches.length };
}

export const NODE_ID = /^[^.]+$/;

export class GraphModel {
  /** `types`: /api/nodes's `types` (ports and params schema of every node type). */
  constructor(types) {
    this.types = types;
    this.listeners = [];
    this.load({ version: 1, nodes: {} });
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  changed(kind) {
    for (const listener of this.listeners) listener(kind);
  }

  /** Replace the document (a graph file's JSON); positions missing from `ui` are laid out. */
  load(document) {
    this.doc = clone(document);
    if (!this.doc.nodes || typeof this.doc.nodes !== "object") this.doc.nodes = {};
    // positions and viewer state are written back only when the file had a `ui` or the layout was edited
    this.writeUi = this.doc.ui !== undefined;
    const saved = (this.doc.ui && this.doc.ui.nodes) || {};
    this.positions = {};
    for (const [id, pos] of Object.entries(saved)) {
      if (this.doc.nodes[id] && pos && Number.isFinite(pos.x) && Number.isFinite(pos.y)) {
        this.positions[id] = { x: pos.x, y: pos.y };
      }
    }
    this.viewer = (this.doc.ui && this.doc.ui.viewer) ? clone(this.doc.ui.viewer) : null;
    this.layoutMissing();
    this.changed("load");
  }

  /** The graph file's JSON for this model. */
  toDocument() {
    const doc = clone(this.doc);
    if (this.writeUi) {
      const ui = (doc.ui && typeof doc.ui === "object") ? doc.ui : {};
      ui.nodes = {};
      for (const id of Object.keys(doc.nodes)) ui.nodes[id] = { ...this.positions[id] };
      if (this.viewer) ui.viewer = clone(this.viewer);
      doc.ui = ui;
    }
    return doc;
  }

  get nodes() {
    return this.doc.nodes;
  }

  node(id) {
    return this.doc.nodes[id];
  }

  typeOf(id) {
    const node = this.doc.nodes[id];
    return node ? this.types[node.type] : undefined;
  }

  /** Every link as {src, srcPort, dst, dstPort}. */
  links() {
    const out = [];
    for (const [dst, node] of Object.entries(this.doc.nodes)) {
      for (const [dstPort, ref] of Object.entries(node.inputs || {})) {
        const [src, srcPort] = splitRef(ref);
        out.push({ src, srcPort, dst, dstPort });
      }
    }
    return out;
  }

  /** Columns by longest path from a source, wrapped into bands of five columns, for nodes
   * that have no position yet. */
  layoutMissing() {
    const ids = Object.keys(this.doc.nodes);
    if (ids.every((id) => this.positions[id])) return;
    const depth = {};
    const depthOf = (id, seen = new Set()) => {
      if (depth[id] !== undefined) return depth[id];
      if (seen.has(id)) return 0;
      seen.add(id);
      let d = 0;
      for (const ref of Object.values((this.doc.nodes[id] || {}).inputs || {})) {
        const [src] = splitRef(ref);
        if (this.doc.nodes[src]) d = Math.max(d, depthOf(src, seen) + 1);
      }
      depth[id] = d;
      return d;
    };
    const COLUMNS = 5;
    const stacks = {};
    for (const id of ids) {
      const d = depthOf(id);
      stacks[d] = (stacks[d] || 0) + 1;
    }
    // each band is as tall as its tallest stack of nodes
    const bandTop = [0];
    const maxDepth = Math.max(0, ...Object.keys(stacks).map(Number));
    for (let band = 0; band * COLUMNS <= maxDepth; band++) {
      let tallest = 1;
      for (let d = band * COLUMNS; d < (band + 1) * COLUMNS; d++) tallest = Math.max(tallest, stacks[d] || 0);
      bandTop.push(bandTop[band] + tallest * 130 + 60);
    }
    const placed = {};
    for (const id of ids) {
      const d = depthOf(id);
      const row = placed[d] = (placed[d] || 0) + 1;
      if (this.positions[id]) continue;
      const band = Math.floor(d / COLUMNS);
      this.positions[id] = { x: 40 + (d % COLUMNS) * 240, y: 40 + bandTop[band] + (row - 1) * 130 };
    }
  }

  freeId(base) {
    let stem = String(base).replace(/\./g, "_").replace(/\d+$/, "") || "node";
    if (!this.doc.nodes[stem]) return stem;
    for (let n = 2; ; n++) if (!this.doc.nodes[stem + n]) return stem + n;
  }

  /** Add a node of `type` at (x, y); its id is the type in lower case, numbered when taken. */
  addNode(type, x, y) {
    const id = this.freeId(type.toLowerCase());
    this.doc.nodes[id] = { type };
    this.positions[id] = { x: Math.round(x), y: Math.round(y) };
    this.writeUi = true;
    this.changed("structure");
    return id;
  }

  removeNode(id) {
    if (!this.doc.nodes[id]) return;
    delete this.doc.nodes[id];
    delete this.positions[id];
    for (const node of Object.values(this.doc.nodes)) {
      for (const [port, ref] of Object.entries(node.inputs || {})) {
        if (splitRef(ref)[0] === id) delete node.inputs[port];
      }
      if (node.inputs && !Object.keys(node.inputs).length) delete node.inputs;
    }
    if (this.viewer && this.viewer.node === id) this.viewer = null;
    this.changed("structure");
  }

  duplicateNode(id) {
    const node = this.doc.nodes[id];
    if (!node) return null;
    const copy = this.freeId(id);
    this.doc.nodes[copy] = clone(node);
    const pos = this.positions[id] || { x: 0, y: 0 };
    this.positions[copy] = { x: pos.x + 40, y: pos.y + 40 };
    this.writeUi = true;
    this.changed("structure");
    return copy;
  }

  /** Rename a node, keeping its place in the file and every link to it; returns an error or null. */
  renameNode(id, name) {
    name = name.trim();
    if (name === id) return null;
    if (!name || !NODE_ID.test(name)) return "a node name is not empty and has no '.'";
    if (this.doc.nodes[name]) return `there is already a node '${name}'`;
    const nodes = {};
    for (const [key, node] of Object.entries(this.doc.nodes)) nodes[key === id ? name : key] = node;
    for (const node of Object.values(nodes)) {
      for (const [port, ref] of Object.entries(node.inputs || {})) {
        const [src, srcPort] = splitRef(ref);
        if (src === id) node.inputs[port] = `${name}.${srcPort}`;
      }
    }
    this.doc.nodes = nodes;
    this.positions[name] = this.positions[id];
    delete this.positions[id];
    if (this.viewer && this.viewer.node === id) this.viewer.node = name;
    this.changed("structure");
    return null;
  }

  moveNode(id, x, y) {
    this.positions[id] = { x: Math.round(x), y: Math.round(y) };
    this.writeUi = true;
    this.changed("layout");
  }

  /** Link `src.srcPort` to `dst`'s input `dstPort` (replacing what fed it). */
  connect(src, srcPort, dst, dstPort) {
    const node = this.doc.nodes[dst];
    if (!node || !this.doc.nodes[src] || src === dst) return;
    let linked = node;
    if (!node.inputs) {
      // the file's usual order: type, inputs, params
      const { type, ...rest } = node;
      linked = this.doc.nodes[dst] = { type, inputs: {}, ...rest };
    }
    linked.inputs[dstPort] = `${src}.${srcPort}`;
    this.changed("structure");
  }

  disconnect(dst, dstPort) {
    const node = this.doc.nodes[dst];
    if (!node || !node.inputs || !(dstPort in node.inputs)) return;
    delete node.inputs[dstPort];
    if (!Object.keys(node.inputs).length) delete node.inputs;
    this.changed("structure");
  }

  /** Would linking src → dst make a cycle? */
  reaches(from, to) {
    const stack = [from];
    const seen = new Set();
    while (stack.length) {
      const id = stack.pop();
      if (id === to) return true;
      if (seen.has(id)) continue;
      seen.add(id);
      for (const ref of Object.values((this.doc.nodes[id] || {}).inputs || {})) stack.push(splitRef(ref)[0]);
    }
    return false;
  }

  param(id, name) {
    const params = (this.doc.nodes[id] || {}).params || {};
    return params[name];
  }

  /** Set a param; `undefined` or its schema default removes it from the document. */
  setParam(id, name, value) {
    const node = this.doc.nodes[id];
    if (!node) return;
    const schema = ((this.types[node.type] || {}).params || {}).properties || {};
    const spec = schema[name] || {};
    const isDefault = value === undefined || ("default" in spec && sameJSON(value, spec.default));
    if (isDefault) {
      if (!node.params || !(name in node.params)) return;
      delete node.params[name];
      if (!Object.keys(node.params).length) delete node.params;
    } else {
      if (node.params && sameJSON(node.params[name], value)) return;
      node.params = node.params || {};
      node.params[name] = value;
    }
    this.changed("param");
  }

  /** What the viewer shows, kept in `ui.viewer` (written when the file keeps a `ui`). */
  setViewer(state) {
    this.viewer = state ? { ...state } : null;
  }
}
