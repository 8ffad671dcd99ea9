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
    const progress = busy ? `v${busy.version} ${busy.status} ${Number(busy.percent ?? 0).toFixed(1)}%` : "";
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
  const versions = records(await sql("SELECT version, active, status, phase, percent, epoch, "
    + "step, total_steps, task, model_name, hyperparams, metrics, error, created_at "
    + `FROM mindsdb.models_versions WHERE name = ${quote(name)} ORDER BY version`));
  const title = el("h2", {}, "Model " + name);
  if (!model.length) {
    view.replaceChildren(title, el("p", { class: "error" }, `no model ${name}`));
    return;
  }
  const about = table(["field", "value"], Object.entries(model[0]));
  if (!versions.length) {
    view.replaceChildren(title, about, el("p", { class: "note" }, "no versions (an external model)"));
    return;
  }
  // Catalog tables answer JSON columns as text.
  for (const v of versions) v.metrics = parsed(v.metrics);
  const parts = [title];
  const busy = versions.filter((v) => v.status === "training" || v.status === "generating");
  for (const v of busy) parts.push(el("h3", {}, `Training version ${v.version}`), trainingLine(v));
  const columns = ["version", "active", "status", "phase", "percent", "task", "model_name",
    "hyperparams", "error", "created_at"];
  parts.push(el("h3", {}, "Versions"), table(columns, versions.map((v) => columns.map((c) => v[c]))));
  parts.push(...metricsParts(versions));
  const project = String(model[0].namespace || "mindsdb").replace(/[^A-Za-z0-9_]/g, "");
  const ident = String(name).replace(/[^A-Za-z0-9_]/g, "");
  const loss = await sql(`DESCRIBE ${project}.${ident}.training_loss`);
  const series = versions.map((v) => ({
    label: "v" + v.version,
    points: loss.rows.filter((r) => r[0] === v.version).map((r) => [r[1], r[2]]),
  })).filter((s) => s.points.length);
  parts.push(el("h3", {}, "Training loss (MLflow)"), series.length
    ? lineChart(series, "step", "loss")
    : el("p", { class: "note" }, "no loss logged yet (it is logged when a version finishes)"));
  parts.push(el("details", {}, el("summary", {}, "Catalog record"), about));
  view.replaceChildren(...parts);
  if (busy.length) schedule(() => modelPage(name), 2000);
}

function parsed(value) {
  if (typeof value !== "string") return value;
  try { return JSON.parse(value); } catch (e) { return value; }
}

// A version's live training progress: a bar and its phase, epoch and step.
function trainingLine(v) {
  const bar = el("progress", { max: "100", class: "training", "data-version": v.version });
  bar.value = Number(v.percent || 0);
  const steps = v.total_steps ? `, step ${v.step ?? 0} of ${v.total_steps}` : "";
  const epoch = v.epoch !== null && v.epoch !== undefined ? `, epoch ${Number(v.epoch).toFixed(2)}` : "";
  return el("p", { class: "progress-line" }, bar,
    ` ${Number(v.percent || 0).toFixed(1)}% ${v.phase || v.status}${epoch}${steps}`);
}

// Scalar holdout metrics side by side (one column per version), then the task's picture of
// the active (else latest) version: a confusion matrix, sample outputs, or metric bars.
function metricsParts(versions) {
  const scored = versions.filter((v) => v.metrics && typeof v.metrics === "object");
  if (!scored.length) return [];
  const scalar = (value) => typeof value === "number";
  const names = [...new Set(scored.flatMap((v) =>
    Object.keys(v.metrics).filter((k) => scalar(v.metrics[k]))))];
  const rows = names.map((n) => [n, ...scored.map((v) => v.metrics[n] ?? null)]);
  const parts = [el("h3", {}, "Holdout metrics"),
    table(["metric", ...scored.map((v) => "v" + v.version)], rows)];
  const shown = scored.find((v) => v.active) || scored[scored.length - 1];
  const m = shown.metrics;
  if (m.confusion_matrix && m.confusion_matrix.matrix) {
    parts.push(el("h3", {}, `Confusion matrix (version ${shown.version})`),
      confusionMatrix(m.confusion_matrix.labels, m.confusion_matrix.matrix));
  } else if (m.confusion_matrix && m.confusion_matrix.matrices) {
    parts.push(el("h3", {}, `Confusion matrix per label (version ${shown.version})`),
      el("div", { class: "matrices" }, ...m.confusion_matrix.labels.map((label, i) =>
        el("figure", {}, el("figcaption", {}, label),
          confusionMatrix(["no", "yes"], m.confusion_matrix.matrices[i])))));
  } else if (Array.isArray(m.samples) && m.samples.length) {
    const keys = Object.keys(m.samples[0]);
    parts.push(el("h3", {}, `Holdout samples (version ${shown.version})`),
      table(keys, m.samples.map((s) => keys.map((k) => s[k]))));
  }
  const unit = names.filter((n) => scalar(m[n]) && m[n] >= 0 && m[n] <= 1 && !/loss|rows/.test(n));
  if (unit.length) {
    parts.push(el("h3", {}, `Metrics (version ${shown.version})`), barChart(unit.map((n) => [n, m[n]])));
  }
  return parts;
}

// Rows: the true label; columns: the predicted one; shade grows with the count.
function confusionMatrix(labels, matrix) {
  const most = Math.max(1, ...matrix.flat());
  const head = el("tr", {}, el("th", {}, "true \\ predicted"), ...labels.map((l) => el("th", {}, l)));
  const body = matrix.map((row, i) => el("tr", {}, el("th", {}, labels[i]), ...row.map((count, j) => {
    const cell = el("td", { class: i === j ? "cm diagonal" : "cm" }, count);
    cell.style.background = `rgba(23, 98, 196, ${(0.85 * count / most).toFixed(3)})`;
    if (count / most > 0.5) cell.style.color = "#fff";
    return cell;
  })));
  return el("table", { class: "confusion" }, el("thead", {}, head), el("tbody", {}, ...body));
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

// Horizontal bars of metrics in [0, 1].
function barChart(pairs) {
  const row = 22, label = 150, width = 300;
  const chart = svg("svg", { class: "bars", width: label + width + 60, height: row * pairs.length + 4 });
  pairs.forEach(([name, value], i) => {
    const y = i * row + 2;
    chart.append(svg("text", { x: 0, y: y + 15 }, name),
      svg("rect", { x: label, y, width: Math.max(1, value * width), height: row - 6 }),
      svg("text", { x: label + value * width + 6, y: y + 15 }, Number(value).toFixed(3)));
  });
  return chart;
}

// One polyline per series over shared axes; the ends of each axis are labelled.
function lineChart(series, xName, yName) {
  const W = 560, H = 260, left = 56, bottom = 28, top = 10, right = 90;
  const all = series.flatMap((s) => s.points);
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const [y0, y1] = [Math.min(0, ...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  const sx = (x) => left + (x1 === x0 ? 0 : (x - x0) / (x1 - x0)) * (W - left - right);
  const sy = (y) => H - bottom - (y1 === y0 ? 0 : (y - y0) / (y1 - y0)) * (H - top - bottom);
  const colours = ["#1762c4", "#c4451c", "#2e8540", "#8a3ab9", "#b58900", "#268bd2"];
  const chart = svg("svg", { class: "curve", width: W, height: H, role: "img",
    "aria-label": `${yName} by ${xName}` });
  chart.append(
    svg("line", { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, class: "axis" }),
    svg("line", { x1: left, y1: top, x2: left, y2: H - bottom, class: "axis" }),
    svg("text", { x: left, y: H - 8 }, `${xName} ${x0}`),
    svg("text", { x: W - right, y: H - 8, "text-anchor": "end" }, String(x1)),
    svg("text", { x: left - 4, y: H - bottom, "text-anchor": "end" }, y0.toFixed(2)),
    svg("text", { x: left - 4, y: top + 10, "text-anchor": "end" }, y1.toFixed(2)),
    svg("text", { x: 2, y: top + 10 }, yName));
  series.forEach((s, i) => {
    const colour = colours[i % colours.length];
    chart.append(svg("polyline", { fill: "none", stroke: colour, "stroke-width": "1.5",
      "data-series": s.label, points: s.points.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" ") }),
    svg("text", { x: W - right + 8, y: top + 14 + 16 * i, style: `fill: ${colour}` }, s.label));
  });
  return chart;
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
