// The palette: node types by category with their docstrings. Click an entry to add the
// node in the middle of the view, or drag it onto the canvas to place it.

/** Fill `container` from /api/nodes's types; `add(type, clientX?, clientY?)` adds a node. */
export function buildPalette(container, types, add, canvasElement) {
  const byCategory = new Map();
  for (const [name, type] of Object.entries(types)) {
    const category = type.category || "other";
    if (!byCategory.has(category)) byCategory.set(category, []);
    byCategory.get(category).push(name);
  }
  const filter = document.createElement("input");
  filter.type = "search";
  filter.placeholder = "Filter node types";
  filter.setAttribute("aria-label", "Filter node types");
  filter.className = "palette-filter";
  container.replaceChildren(filter);
  const entries = [];
  for (const category of [...byCategory.keys()].sort()) {
    const section = document.createElement("section");
    section.className = "palette-category";
    const heading = document.createElement("h3");
    heading.textContent = category;
    section.appendChild(heading);
    for (const name of byCategory.get(category).sort()) {
      const doc = (types[name].doc || "").trim();
      const button = document.createElement("button");
      button.type = "button";
      button.className = "palette-entry";
      button.setAttribute("data-testid", `palette-${name}`);
      button.title = doc;
      button.setAttribute("aria-label", name); // the docstring is its description, not its name
      const label = document.createElement("span");
      label.className = "palette-name";
      label.textContent = name;
      const summary = document.createElement("span");
      summary.className = "palette-doc";
      summary.textContent = doc.split("\n")[0];
      button.append(label, summary);
      section.appendChild(button);
      entries.push({ name, doc, button, section });
      enableDrag(button, name, add, canvasElement);
    }
    container.appendChild(section);
  }
  filter.addEventListener("input", () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const entry of entries) {
      const text = `${entry.name} ${entry.doc}`.toLowerCase();
      entry.button.hidden = !words.every((w) => text.includes(w));
    }
    for (const section of container.querySelectorAll(".palette-category")) {
      section.hidden = ![...section.querySelectorAll(".palette-entry")].some((b) => !b.hidden);
    }
  });
}

function enableDrag(button, name, add, canvasElement) {
  let start = null;
  let ghost = null;
  let dragged = false;
  const move = (e) => {
    if (!start) return;
    if (!ghost && Math.hypot(e.clientX - start.x, e.clientY - start.y) > 5) {
      ghost = document.createElement("div");
      ghost.className = "palette-ghost";
      ghost.textContent = name;
      document.body.appendChild(ghost);
    }
    if (ghost) {
      ghost.style.left = `${e.clientX + 8}px`;
      ghost.style.top = `${e.clientY + 8}px`;
    }
  };
  const up = (e) => {
    window.removeEventListener("pointermove", move);
    window.removeEventListener("pointerup", up);
    start = null;
    if (!ghost) return;
    ghost.remove();
    ghost = null;
    dragged = true; // the click that may follow this drag is not an "add"
    setTimeout(() => { dragged = false; }, 0);
    const r = canvasElement.getBoundingClientRect();
    if (e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom) {
      add(name, e.clientX, e.clientY);
    }
  };
  button.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    start = { x: e.clientX, y: e.clientY };
    dragged = false;
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  });
  button.addEventListener("click", () => {
    if (dragged) {
      dragged = false;
      return;
    }
    add(name);
  });
}
