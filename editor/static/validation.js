// Live validation: POST /api/validate after each change (debounced); the answer's issues go
// to the canvas (node outline and badge, port), the param panel and the list of issues.

import { request } from "./connection.js";

const DEBOUNCE_MS = 250;

export class Validator {
  /** `documentOf()` and `pathOf()` give what to check; `show(issues)` spreads the answer over the page. */
  constructor(list, summary, { documentOf, pathOf, show, select }) {
    this.list = list;
    this.summary = summary;
    this.documentOf = documentOf;
    this.pathOf = pathOf;
    this.showIssues = show;
    this.select = select;
    this.timer = null;
    this.sequence = 0;
    this.issues = [];
  }

  schedule() {
    clearTimeout(this.timer);
    this.summary.textContent = "checking…";
    this.timer = setTimeout(() => this.check(), DEBOUNCE_MS);
  }

  async check() {
    const sequence = ++this.sequence;
    let answer;
    try {
      answer = await request("/api/validate", { json: { document: this.documentOf(), path: this.pathOf() || null } });
    } catch (_) {
      if (sequence === this.sequence) this.summary.textContent = "not checked";
      return;
    }
    if (sequence !== this.sequence) return; // a newer change is being checked
    this.issues = answer.issues || [];
    this.render();
    this.showIssues(this.issues);
  }

  render() {
    this.list.replaceChildren();
    const count = this.issues.length;
    this.summary.textContent = count ? `${count} issue${count === 1 ? "" : "s"}` : "no issues";
    this.summary.classList.toggle("bad", count > 0);
    for (const issue of this.issues) {
      const item = document.createElement("li");
      item.className = "issue";
      item.setAttribute("data-testid", "issue");
      if (issue.node) item.dataset.node = issue.node;
      if (issue.port) item.dataset.port = issue.port;
      if (issue.param) item.dataset.param = issue.param;
      const where = document.createElement("div");
      where.className = "issue-where";
      where.textContent = issue.where;
      const problem = document.createElement("div");
      problem.className = "issue-problem";
      problem.textContent = issue.problem;
      item.append(where, problem);
      if (issue.fix) {
        const fix = document.createElement("div");
        fix.className = "issue-fix";
        fix.textContent = `fix: ${issue.fix}`;
        item.appendChild(fix);
      }
      if (issue.node) {
        item.tabIndex = 0;
        item.title = "Select the node";
        const go = () => this.select(issue.node);
        item.addEventListener("click", go);
        item.addEventListener("keydown", (e) => {
          if (e.key === "Enter") go();
        });
      }
      this.list.appendChild(item);
    }
  }
}
