// Talking to the server: HTTP requests carrying the session token, the WebSocket with
// reconnect, the error bar (a server error's one line) and the connection banner.

const token = new URLSearchParams(location.search).get("token") || "";

export class ServerError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const errorBar = () => document.getElementById("error-bar");
const banner = () => document.getElementById("connection-banner");

/** Show a one-line error in the error bar (until dismissed or the next error). */
export function showError(message) {
  const bar = errorBar();
  const line = bar.querySelector(".message");
  line.textContent = String(message).split("\n")[0];
  line.title = line.textContent; // the bar may cut a long line short
  bar.hidden = false;
}

export function clearError() {
  errorBar().hidden = true;
}

function setServerDown(down) {
  banner().hidden = !down;
  document.body.classList.toggle("server-down", down);
}

/**
 * A request to the server. `json` is sent as the JSON body (the method becomes POST);
 * the answer is parsed as JSON unless `as` is "blob". A 4xx/5xx raises ServerError with
 * the server's one line, also shown in the error bar unless `quiet` lists its status.
 */
export async function request(path, { json, as = "json", quiet = [] } = {}) {
  const init = { method: json === undefined ? "GET" : "POST", headers: { "X-Swapgraph-Token": token } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (exc) {
    setServerDown(true);
    socket.kick();
    throw new ServerError(0, "the server does not answer");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
    } catch (_) { /* not JSON: keep the status line */ }
    if (!quiet.includes(response.status)) showError(message);
    throw new ServerError(response.status, message);
  }
  return as === "blob" ? response : response.json();
}

/** The WebSocket `/ws`: messages go to listeners by `op`; reconnects while the server is away. */
class Socket {
  constructor() {
    this.ws = null;
    this.listeners = new Map();
    this.delay = 500;
    this.timer = null;
    this.wasOpen = false;
  }

  on(op, listener) {
    if (!this.listeners.has(op)) this.listeners.set(op, []);
    this.listeners.get(op).push(listener);
  }

  emit(op, message) {
    for (const listener of this.listeners.get(op) || []) listener(message);
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws?token=${encodeURIComponent(token)}`);
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 500;
      setServerDown(false);
      if (this.wasOpen) this.emit("reconnected", {});
      this.wasOpen = true;
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      this.emit(message.op, message);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      setServerDown(true);
      this.emit("closed", {});
      this.schedule();
    };
  }

  schedule() {
    if (this.timer) return;
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, 1000); // a local server: retry often
  }

  /** A request failed to reach the server: retry the socket soon rather than wait. */
  kick() {
    if (!this.ws) this.schedule();
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.open) {
      showError("not connected to the server");
      return false;
    }
    this.ws.send(JSON.stringify(message));
    return true;
  }
}

export const socket = new Socket();
