// byom-gateway console: a hash-routed page over the HTTP API. Plain JS, no build step.
// Every value from the server goes into the page as text nodes (never parsed as HTML).
"use strict";

const TOKEN_KEY = "byom.token";
const view = document.getElementById("view");
let timer = null; // the current page's refresh (models while training, queries)

// --- DOM and API helpers -----------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child ?? ""));
  }
  return node;
}

function text(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

class ApiError extends Error {
  constructor(body, status) {
    const error = (body && body.error) || { code: "HTTP_" + status, message: String(status) };
    super(error.message);
    this.error = error;
  }
}

// fetch with the token; a 401 brings the token form back.
async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (response.status === 401) {
    showLogin(data && data.error ? data.error.message : "");
    throw new ApiError(data, 401);
  }
  if (!response.ok) throw new ApiError(data, response.status);
  // A streamed answer that failed after it started ends with an "error" member.
  if (data && data.error) throw new ApiError(data, response.status);
  return data;
}

const sql = (query) => api("POST", "/api/sql", { query });
const quote = (name) => "'" + String(name).replace(/'/g, "''") + "'";

function records(result) {
  return result.rows.map((row) => Object.fromEntries(result.columns.map((c, i) => [c, row[i]])));
}

function table(columns, rows, cell) {
  const head = el("tr", {}, ...columns.map((c) => el("th", {}, c)));
  const body = rows.map((row) => el("tr", {}, ...row.map((value, i) => {
    const custom = cell ? cell(columns[i], value, row) : undefined;
    if (custom !== undefined) return el("td", {}, custom);
    return el("td", value === null ? { class: "null" } : {}, value === null ? "NULL" : text(value));
  })));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

function errorBox(exc) {
  const e = exc.error || { code: "ERROR", message: String(exc.message || exc) };
  const where = e.line !== undefined ? ` (line ${e.line}, col ${e.col})` : "";
  return el("p", { class: "error", role: "alert" }, el("code", {}, e.code), ": " + e.message + where);
}

// --- the token form --------------------------------------------------------------------

const login = document.getElementById("login");
function showLogin(message) {
  login.hidden = false;
  view.hidden = true;
  document.getElementById("login-error").textContent = message || "";
}
login.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  login.hidden = true;
  view.hidden = false;
  route();
});
document.getElementById("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin("");
});

// --- pages -----------------------------------------------------------------------------

function sqlPage() {
  const input = el("textarea", { id: "sql-input", spellcheck: "false",
    placeholder: "SELECT ... (Ctrl+Enter runs it)" });
  input.value = sessionStorage.getItem("byom.sql") || "SHOW MODELS";
  const output = el("div", { id: "sql-output" });
  async function run() {
    sessionStorage.setItem("byom.sql", input.value);
    output.replaceChildren(el("p", { class: "note" }, "running..."));
    try {
      const answer = await sql(input.value);
      const parts = answer.results || [answer];
      output.replaceChildren(...parts.flatMap((r) => [
        r.message ? el("p", { class: "note" }, r.message) : "",
        r.columns && r.columns.length ? table(r.columns, r.rows) : "",
        el("p", { class: "hint" }, `${(r.rows || []).length} rows`),
      ]));
    } catch (exc) {
      output.replaceChildren(errorBox(exc));
    }
  }
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run();
    }
  });
  view.replaceChildren(el("h2", {}, "SQL"), input,
    el("p", {}, el("button", { type: "button", onclick: run }, "Run"),
      el("span", { class: "hint" }, "  Ctrl+Enter")), output);
  input.focus();
}

async function modelsPage() {
  const models = records(await sql(
    "SELECT name, namespace, kind, status, version, error FROM mindsdb.models ORDER BY name"));
  const versions = records(await sql(
    "SELECT name, version, active, status, percent, metrics FROM mindsdb.models_versions"));
  const training = versions.some((v) => v.status === "training" || v.status === "generating")
    || models.some((m) => m.status === "training" || m.status === "generating");
  const rows = models.map((m) => {
    const own = versions.filter((v) => v.name === m.name);
    const active = own.find((v) => v.active);
    const busy = own.find((v) => v.status === "training" || v.status === "generating");
    const metrics = own.map((v) => `v${v.version}: ${text(v.metrics)}`).join("\n");
    const progress = busy ? `v${busy.version} ${busy.status} ${busy.percent ?? 0}%` : "";
    return [m.name, m.namespace, m.kind, m.status, m.version, active ? active.version : null,
      metrics || null, progress || null, m.error];
  });
  const columns = ["name", "project", "kind", "status", "version", "active version",
    "metrics per version", "training", "error"];
  view.replaceChildren(el("h2", {}, "Models"), table(columns, rows, (column, value) =>
    column === "name" ? el("a", { href: "#model/" + encodeURIComponent(value) }, value) : undefined),
  el("p", { class: "hint" }, training ? "training: refreshing every 2 s" : ""));
  if (training) schedule(modelsPage, 2000);
}

async function modelPage(name) {
  const model = records(await sql(`SELECT * FROM mindsdb.models WHERE name = ${quote(name)}`));
  const versions = await sql("SELECT version, active, status, phase, percent, task, model_name, "
    + "hyperparams, metrics, error, created_at FROM mindsdb.models_versions "
    + `WHERE name = ${quote(name)} ORDER BY version`);
  const about = model.length
    ? table(["field", "value"], Object.entries(model[0]))
    : el("p", { class: "error" }, `no model ${name}`);
  view.replaceChildren(el("h2", {}, "Model " + name), about, el("h3", {}, "Versions"),
    versions.rows.length ? table(versions.columns, versions.rows)
      : el("p", { class: "note" }, "no versions (an external model)"));
  if (versions.rows.some((r) => r[2] === "training" || r[2] === "generating")) {
    schedule(() => modelPage(name), 2000);
  }
}

async function datasourcesPage(selected) {
  const databases = await sql("SHOW DATABASES");
  const nameAt = databases.columns.indexOf("name");
  const list = table(databases.columns, databases.rows, (column, value) =>
    column === "name" ? el("a", { href: "#datasources/" + encodeURIComponent(value) }, value)
      : undefined);
  const parts = [el("h2", {}, "Datasources"), list];
  if (selected && databases.rows.some((r) => r[nameAt] === selected)) {
    const tables = await sql("SHOW TABLES FROM " + selected.replace(/[^A-Za-z0-9_]/g, ""));
    parts.push(el("h3", {}, "Tables of " + selected), table(tables.columns, tables.rows));
  }
  view.replaceChildren(...parts);
}

async function queriesPage() {
  const entries = await api("GET", "/api/queries");
  const columns = ["id", "kind", "status", "progress", "rows_done", "rows_total", "statement",
    "error", ""];
  const rows = entries.slice().reverse().map((q) => columns.map((c) => q[c] ?? null));
  view.replaceChildren(el("h2", {}, "Queries"), table(columns, rows, (column, value, row) => {
    const entry = entries.find((q) => q.id === row[0]);
    if (column === "progress") {
      const bar = el("progress", { max: "1" });
      if (entry.fraction !== null) bar.value = entry.fraction;
      return bar;
    }
    if (column === "" && entry.status === "running") {
      return el("button", { type: "button", class: "cancel", onclick: async () => {
        try { await api("DELETE", "/api/queries/" + encodeURIComponent(entry.id)); }
        catch (exc) { view.prepend(errorBox(exc)); }
        queriesPage();
      } }, "Cancel");
    }
    return undefined;
  }), el("p", { class: "hint" }, "refreshing every 2 s"));
  schedule(queriesPage, 2000);
}

// --- routing ---------------------------------------------------------------------------

function schedule(page, ms) {
  clearTimeout(timer);
  const hash = location.hash;
  timer = setTimeout(() => { if (location.hash === hash && login.hidden) page(); }, ms);
}

async function route() {
  clearTimeout(timer);
  const [page, arg] = (location.hash.slice(1) || "sql").split("/");
  const name = arg === undefined ? undefined : decodeURIComponent(arg);
  for (const link of document.querySelectorAll("header nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === "#" + page);
  }
  document.getElementById("forget").hidden = !sessionStorage.getItem(TOKEN_KEY);
  const pages = { sql: sqlPage, models: modelsPage, model: modelPage,
    datasources: datasourcesPage, queries: queriesPage };
  try {
    await (pages[page] || sqlPage)(name);
  } catch (exc) {
    if (!(exc instanceof ApiError && exc.error.code === "UNAUTHORIZED")) {
      view.replaceChildren(errorBox(exc));
    }
  }
}

window.addEventListener("hashchange", route);
// One cheap call first: with authentication on and no token kept, its 401 shows the form.
api("GET", "/api/queries").then(route, (exc) => {
  if (!(exc instanceof ApiError && exc.error.code === "UNAUTHORIZED")) route();
});
