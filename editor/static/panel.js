// The param panel: a form generated from the selected node's params JSON Schema. Numbers
// keep their ranges, enums are menus, booleans checkboxes, paths have a file browser; a
// param left empty (or set to its default) is removed from the document, and the default
// shows as the placeholder.

import { paramShape, sameJSON } from "./graph.js";

/** The path of `file` (relative to the root) from the folder of the graph at `graphPath`. */
export function relativeTo(graphPath, file) {
  const from = (graphPath && !graphPath.startsWith("preset:")) ? graphPath.split("/").slice(0, -1) : [];
  const to = file.split("/").filter(Boolean);
  let common = 0;
  while (common < from.length && common < to.length - 1 && from[common] === to[common]) common++;
  return [...from.slice(common).map(() => ".."), ...to.slice(common)].join("/");
}

const show = (value) => (value === null ? "none" : typeof value === "object" ? JSON.stringify(value) : String(value));

export class Panel {
  /** `browse(title)` resolves to a root-relative path or null; `graphPath()` is the open graph's path. */
  constructor(container, model, { browse, graphPath, view }) {
    this.container = container;
    this.model = model;
    this.browse = browse;
    this.graphPath = graphPath;
    this.view = view;
    this.id = null;
    this.issues = [];
  }

  show(id) {
    this.id = id && this.model.node(id) ? id : null;
    this.render();
  }

  render() {
    const box = this.container;
    box.replaceChildren();
    const id = this.id;
    if (!id) {
      const empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "Select a node to edit its params.";
      box.appendChild(empty);
      return;
    }
    const node = this.model.node(id);
    const type = this.model.types[node.type];
    const head = document.createElement("div");
    head.className = "panel-head";
    const title = document.createElement("h2");
    title.textContent = id;
    const typeName = document.createElement("span");
    typeName.className = "type-name";
    typeName.textContent = node.type;
    title.append(" ", typeName);
    const view = document.createElement("button");
    view.type = "button";
    view.textContent = "View";
    view.title = "Show this node in the viewer";
    view.addEventListener("click", () => this.view(id));
    head.append(title, view);
    box.appendChild(head);
    if (!type) {
      const unknown = document.createElement("p");
      unknown.className = "field-issue";
      unknown.textContent = `unknown node type '${node.type}'`;
      box.appendChild(unknown);
      return;
    }
    if (type.doc) {
      const about = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = type.doc.split("\n")[0];
      const full = document.createElement("pre");
      full.className = "doc";
      full.textContent = type.doc;
      about.append(summary, full);
      box.appendChild(about);
    }
    this.nodeIssues = document.createElement("ul");
    this.nodeIssues.className = "node-issues";
    box.appendChild(this.nodeIssues);
    const form = document.createElement("form");
    form.className = "params";
    form.addEventListener("submit", (e) => e.preventDefault());
    if ((type.devices || []).length) form.appendChild(this.deviceField(id, type.devices));
    const properties = (type.params && type.params.properties) || {};
    const required = new Set((type.params && type.params.required) || []);
    for (const [name, schema] of Object.entries(properties)) form.appendChild(this.field(id, name, schema, required.has(name)));
    if (!Object.keys(properties).length) {
      const none = document.createElement("p");
      none.className = "muted";
      none.textContent = "No params.";
      form.appendChild(none);
    }
    box.appendChild(form);
    this.setIssues(this.issues);
  }

  deviceField(id, devices) {
    const row = document.createElement("div");
    row.className = "field";
    const label = document.createElement("label");
    label.textContent = "device";
    label.htmlFor = "node-device";
    const select = document.createElement("select");
    select.id = "node-device";
    select.setAttribute("data-testid", "node-device");
    for (const value of ["", "auto", ...devices]) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = value || "graph's device";
      select.appendChild(option);
    }
    select.value = this.model.node(id).device || "";
    select.addEventListener("change", () => {
      const node = this.model.node(id);
      if (select.value) node.device = select.value;
      else delete node.device;
      this.model.changed("param");
    });
    row.append(label, select);
    return row;
  }

  field(id, name, rawSchema, required) {
    const schema = paramShape(rawSchema);
    const current = this.model.param(id, name);
    const hasDefault = "default" in rawSchema;
    const row = document.createElement("div");
    row.className = "field";
    row.dataset.param = name;
    const label = document.createElement("label");
    label.textContent = name;
    label.htmlFor = `param-${name}`;
    row.appendChild(label);
    const set = (value) => this.model.setParam(id, name, value);
    let input;
    let rangeText = "";
    if (schema.enum) {
      input = document.createElement("select");
      const choices = [...schema.enum];
      if (!hasDefault || schema.nullable) choices.unshift(null);
      for (const choice of choices) {
        const option = document.createElement("option");
        option.value = choice === null ? "" : String(choice);
        option.textContent = choice === null ? (hasDefault ? "none" : "choose…")
          : `${choice}${hasDefault && sameJSON(choice, rawSchema.default) ? " (default)" : ""}`;
        input.appendChild(option);
      }
      const value = current !== undefined ? current : rawSchema.default;
      input.value = value === null || value === undefined ? "" : String(value);
      input.addEventListener("change", () => {
        if (input.value === "") set(hasDefault && rawSchema.default !== null ? undefined : null);
        else set(schema.enum.find((choice) => String(choice) === input.value));
      });
    } else if (schema.type === "boolean") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = Boolean(current !== undefined ? current : rawSchema.default);
      input.addEventListener("change", () => set(input.checked));
    } else if (schema.type === "number" || schema.type === "integer") {
      input = document.createElement("input");
      input.type = "number";
      input.step = schema.type === "integer" ? "1" : "any";
      const min = schema.minimum ?? schema.exclusiveMinimum;
      const max = schema.maximum ?? schema.exclusiveMaximum;
      if (min !== undefined) input.min = String(min);
      if (max !== undefined) input.max = String(max);
      input.value = current === undefined || current === null ? "" : String(current);
      input.addEventListener("input", () => {
        const text = input.value.trim();
        if (text === "") set(undefined);
        else if (Number.isFinite(Number(text))) set(Number(text));
      });
      const range = [];
      if (schema.minimum !== undefined) range.push(`≥ ${schema.minimum}`);
      if (schema.exclusiveMinimum !== undefined) range.push(`> ${schema.exclusiveMinimum}`);
      if (schema.maximum !== undefined) range.push(`≤ ${schema.maximum}`);
      if (schema.exclusiveMaximum !== undefined) range.push(`< ${schema.exclusiveMaximum}`);
      rangeText = range.join(", ");
    } else {
      input = document.createElement("input");
      input.type = "text";
      const scalar = ["string", undefined].includes(schema.type);
      input.value = current === undefined || current === null ? "" : scalar ? String(current) : JSON.stringify(current);
      input.addEventListener("input", () => {
        const text = input.value;
        if (text === "") set(undefined);
        else if (scalar) set(text);
        else {
          try {
            set(JSON.parse(text));
          } catch (_) { /* wait until it is JSON */ }
        }
      });
    }
    input.id = `param-${name}`;
    input.name = name;
    input.setAttribute("data-testid", `param-${name}`);
    if (input.tagName === "INPUT" && input.type !== "checkbox") {
      input.placeholder = hasDefault ? show(rawSchema.default) : required ? "required" : "";
    }
    row.appendChild(input);
    if (schema.format === "path") {
      const browse = document.createElement("button");
      browse.type = "button";
      browse.className = "browse";
      browse.textContent = "Browse…";
      browse.addEventListener("click", async () => {
        const file = await this.browse(`Choose ${name}`);
        if (file === null) return;
        input.value = relativeTo(this.graphPath(), file);
        set(input.value);
      });
      row.appendChild(browse);
    }
    if (rawSchema.description || rangeText) {
      const doc = document.createElement("div");
      doc.className = "field-doc";
      if (rangeText) {
        const range = document.createElement("span");
        range.className = "range";
        range.textContent = rangeText;
        doc.append(range, rawSchema.description ? " · " : "");
      }
      doc.append(rawSchema.description || "");
      row.appendChild(doc);
    }
    const issue = document.createElement("div");
    issue.className = "field-issue";
    issue.setAttribute("data-testid", `param-issue-${name}`);
    issue.hidden = true;
    row.appendChild(issue);
    return row;
  }

  /** Show the validator's issues about the selected node next to its params. */
  setIssues(issues) {
    this.issues = issues;
    if (!this.id || !this.nodeIssues) return;
    const mine = issues.filter((i) => i.node === this.id);
    const rows = new Map([...this.container.querySelectorAll(".field[data-param]")].map((r) => [r.dataset.param, r]));
    for (const row of rows.values()) {
      row.classList.remove("invalid");
      const box = row.querySelector(".field-issue");
      box.hidden = true;
      box.textContent = "";
    }
    this.nodeIssues.replaceChildren();
    for (const issue of mine) {
      const text = `${issue.problem}${issue.fix ? ` — fix: ${issue.fix}` : ""}`;
      const row = issue.param && rows.get(issue.param);
      if (row) {
        row.classList.add("invalid");
        const box = row.querySelector(".field-issue");
        box.hidden = false;
        box.textContent = box.textContent ? `${box.textContent}\n${text}` : text;
      } else {
        const item = document.createElement("li");
        item.textContent = `${issue.port ? `${issue.port}: ` : issue.param ? `${issue.param}: ` : ""}${text}`;
        this.nodeIssues.appendChild(item);
      }
    }
  }
}
