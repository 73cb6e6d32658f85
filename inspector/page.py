# ruff: noqa: E501  (embedded CSS/JS lines)
"""The inspector's page, stylesheet and script, served from memory (no CDN, no network)."""

from __future__ import annotations

__all__ = ["APP_JS", "EXECUTION_HTML", "INDEX_HTML", "STYLE_CSS"]

_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/static/inspector.css">
<script src="/static/inspector.js" defer></script>
</head>"""

INDEX_HTML = (
    _HEAD.format(title="Step Functions inspector")
    + """
<body data-page="index">
<header><h1><a href="/">Step Functions inspector</a></h1></header>
<main class="index">
  <section>
    <h2>State machines</h2>
    <table id="state-machines"><thead><tr><th>Name</th><th>Type</th><th>Created</th></tr></thead>
    <tbody></tbody></table>
  </section>
  <section>
    <h2>Executions <span id="filter-label"></span></h2>
    <label>Status
      <select id="status-filter">
        <option value="">all</option><option>RUNNING</option><option>SUCCEEDED</option>
        <option>FAILED</option><option>TIMED_OUT</option><option>ABORTED</option>
      </select>
    </label>
    <label>Saga outcome
      <select id="outcome-filter">
        <option value="">all</option><option value="completed">completed</option>
        <option value="compensated">compensated</option>
        <option value="compensation_failed">compensation failed</option>
      </select>
    </label>
    <table id="executions"><thead><tr><th>Name</th><th>State machine</th><th>Status</th>
      <th>Saga outcome</th><th>Started</th><th>Stopped</th></tr></thead><tbody></tbody></table>
  </section>
  <p id="error" class="error" hidden></p>
</main>
</body></html>
"""
)

EXECUTION_HTML = (
    _HEAD.format(title="Execution — Step Functions inspector")
    + """
<body data-page="execution">
<header><h1><a href="/">Step Functions inspector</a></h1></header>
<main>
  <section id="summary"><h2 id="execution-name">Loading…</h2><dl id="execution-fields"></dl></section>
  <p id="error" class="error" hidden></p>
  <div class="split">
    <section class="graph-pane">
      <h3>Graph</h3>
      <ul class="legend" id="legend">
        <li><span class="swatch succeeded"></span>succeeded</li>
        <li><span class="swatch failed"></span>failed</li>
        <li><span class="swatch compensated"></span>compensated</li>
        <li><span class="swatch running"></span>running</li>
        <li><span class="swatch not_reached"></span>not reached</li>
        <li><span class="swatch compensation-mark"></span>compensation step</li>
        <li><span class="swatch choice-mark"></span>a step's failure: rejected or unknown outcome</li>
      </ul>
      <div id="graph"></div>
      <h3>States</h3>
      <table id="states"><colgroup><col class="c-state"><col class="c-type"><col class="c-outcome">
        <col class="c-comp"><col class="c-error"></colgroup>
        <thead><tr><th>State</th><th>Type</th><th>Outcome</th><th>Compensation</th>
        <th>Error</th></tr></thead><tbody></tbody></table>
    </section>
    <section class="events-pane">
      <h3>Events <small id="events-filter"></small></h3>
      <!-- input/output/error go in a full-width row under their event: beside the graph there
           is no room for a sixth column that could hold JSON -->
      <table id="events"><colgroup><col class="c-id"><col class="c-type"><col class="c-state">
        <col class="c-time"><col class="c-elapsed"></colgroup>
        <thead><tr><th>ID</th><th>Type</th><th>State</th><th>Time (UTC)</th>
        <th>Elapsed ms</th></tr></thead><tbody></tbody></table>
    </section>
  </div>
</main>
</body></html>
"""
)

STYLE_CSS = """
:root { --succeeded:#2e7d32; --failed:#c62828; --compensated:#ef6c00; --not_reached:#9e9e9e; --running:#1565c0; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #232f3e; color: #fff; padding: 8px 16px; }
header h1 { font-size: 18px; margin: 0; } header a { color: #fff; text-decoration: none; }
main { padding: 12px 16px; }
table { border-collapse: collapse; width: 100%; background: #fff; margin-bottom: 12px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
tr.clickable { cursor: pointer; } tr.selected { background: #fff7d6; }
.status { display: inline-block; white-space: nowrap; padding: 1px 6px; border-radius: 3px; color: #fff; font-size: 12px; font-weight: 600; }
.status.SUCCEEDED, .status.succeeded, .status.completed { background: var(--succeeded); }
.status.FAILED, .status.failed, .status.TIMED_OUT, .status.ABORTED, .status.compensation_failed { background: var(--failed); }
.status.compensated { background: var(--compensated); }
.status.RUNNING, .status.running { background: var(--running); }
.status.not_reached, .status.none { background: var(--not_reached); }
/* a saga's Step Functions status says only that the machine ran to an end; its outcome has the colour */
.status.muted { background: #fff; color: #333; box-shadow: inset 0 0 0 1px #999; }
.split { display: flex; gap: 16px; align-items: flex-start; }
.graph-pane { flex: 0 1 auto; max-width: 50%; min-width: 0; }
.events-pane { flex: 1 1 0; min-width: 0; }
#graph svg { background: #fff; border: 1px solid #ddd; max-width: 100%; height: auto; }
.node .shape { stroke: #333; stroke-width: 1; }
.node.compensation .shape { stroke-dasharray: 5 3; stroke-width: 2; }
.node text { fill: #fff; font-size: 12px; font-weight: 600; pointer-events: none; }
.node.helper text { font-size: 14px; }
.node { cursor: pointer; }
.node.succeeded .shape { fill: var(--succeeded); } .node.failed .shape { fill: var(--failed); }
.node.compensated .shape { fill: var(--compensated); } .node.not_reached .shape { fill: var(--not_reached); }
.node.running .shape { fill: var(--running); }
/* a helper the path did not go through stays in the background */
.node.helper.not_reached .shape { fill: #e0e0e0; stroke: #9e9e9e; } .node.helper.not_reached text { fill: #757575; }
.edge { fill: none; stroke: #666; stroke-width: 1.5; } .edge.catch { stroke: #c62828; stroke-dasharray: 4 3; }
.edge.taken { stroke: #111; stroke-width: 2.5; } .edge.catch.taken { stroke: #8e0000; }
.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 10px; margin: 4px 0 8px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; border-radius: 2px; }
.swatch.succeeded { background: var(--succeeded); } .swatch.failed { background: var(--failed); }
.swatch.compensated { background: var(--compensated); } .swatch.running { background: var(--running); }
.swatch.not_reached { background: var(--not_reached); }
.swatch.compensation-mark { border: 2px dashed #333; width: 9px; height: 9px; }
.swatch.choice-mark { width: 9px; height: 9px; background: #555; transform: rotate(45deg); margin: 0 6px 0 2px; border-radius: 0; }
#failures li { margin: 0; } #failures { margin: 0; padding-left: 1.2em; }
pre { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 14em; overflow: auto; font-size: 12px; }
#executions th, #executions td + td { white-space: nowrap; }  /* only the name may wrap */
#events, #states { table-layout: fixed; }
#events td, #events .c-id { width: 3em; } #events .c-type { width: 30%; } #events .c-state { width: 30%; }
#events .c-time { width: 8em; } #events .c-elapsed { width: 6em; }
#events tr.io td { padding: 0 8px 6px 3em; border-bottom: 1px solid #e3e3e3; }
#events tr.event:has(+ tr.io) td { border-bottom: none; }
#events tr.io details { display: inline-block; vertical-align: top; margin-right: 12px; max-width: 100%; }
#events tr.io details[open] { display: block; }
#states .c-state { width: 30%; } #states .c-type { width: 10%; } #states .c-outcome { width: 17%; }
#states .c-comp { width: 21%; } #states .c-error { width: 22%; }
details summary { cursor: pointer; color: #555; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 0 0 8px; }
dt { font-weight: 600; } dd { margin: 0; }
.error { color: #c62828; font-weight: 600; }
"""

APP_JS = r"""
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}
function svg(tag, attrs) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
function fmt(ts) { return ts ? ts.replace("T", " ").replace(/\+00:00$/, "Z") : ""; }
function badge(value, extra) {
  if (!value) return el("span", {class: "status none", title: "not a saga, or no saga end state reached"}, "none");
  return el("span", {class: "status " + value + (extra ? " " + extra : "")}, value.replaceAll("_", " "));
}
function timeOf(ts) { return ts ? ts.slice(11, 23) : ""; }
async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
function showError(err) {
  const box = document.getElementById("error");
  box.textContent = String(err.message || err);
  box.hidden = false;
}
function pretty(text) {
  if (text === null || text === undefined) return "";
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return String(text); }
}

// ------------------------------------------------------------------ index page
async function loadIndex() {
  const params = new URLSearchParams(location.search);
  for (const [key, id] of [["status", "status-filter"], ["outcome", "outcome-filter"]]) {
    const select = document.getElementById(id);
    select.value = params.get(key) || "";
    select.addEventListener("change", () => {
      if (select.value) params.set(key, select.value); else params.delete(key);
      location.search = params.toString();
    });
  }
  const machines = await getJSON("/api/state-machines");
  const smBody = document.querySelector("#state-machines tbody");
  for (const sm of machines) {
    const row = el("tr", {class: "clickable" + (params.get("state_machine") === sm.arn ? " selected" : ""),
                          "data-arn": sm.arn}, el("td", {}, sm.name), el("td", {}, sm.type), el("td", {}, fmt(sm.creation_date)));
    row.addEventListener("click", () => {
      if (params.get("state_machine") === sm.arn) params.delete("state_machine"); else params.set("state_machine", sm.arn);
      location.search = params.toString();
    });
    smBody.append(row);
  }
  const query = new URLSearchParams();
  for (const key of ["state_machine", "status", "outcome"]) if (params.get(key)) query.set(key, params.get(key));
  if (params.get("state_machine")) document.getElementById("filter-label").textContent =
      "of " + params.get("state_machine").split(":").pop();
  const executions = await getJSON("/api/executions?" + query.toString());
  const body = document.querySelector("#executions tbody");
  for (const ex of executions) {
    body.append(el("tr", {"data-execution": ex.arn, "data-status": ex.status, "data-outcome": ex.saga_outcome || ""},
      el("td", {}, el("a", {href: "/executions/" + encodeURIComponent(ex.arn)}, ex.name)),
      el("td", {}, ex.state_machine_arn.split(":").pop()),
      el("td", {}, badge(ex.status, ex.saga_outcome ? "muted" : "")), el("td", {}, badge(ex.saga_outcome)),
      el("td", {}, fmt(ex.start_date)), el("td", {}, fmt(ex.stop_date))));
  }
  if (!executions.length) body.append(el("tr", {}, el("td", {colspan: "6"}, "No executions.")));
}

// ------------------------------------------------------------------ execution page
// Routes come laid out from the server (they avoid every node): two points between neighbouring
// rows are drawn as a curve, longer routes as straight runs along the gaps.
function edgePath(points) {
  if (points.length === 2) {
    const [[x1, y1], [x2, y2]] = points, my = (y1 + y2) / 2;
    return `M ${x1} ${y1} C ${x1} ${my}, ${x2} ${my}, ${x2} ${y2}`;
  }
  return "M " + points.map(p => p.join(" ")).join(" L ");
}
const BRANCH_TITLES = {rejected: "rejected: undo the steps before it",
                       unknown: "unknown outcome: undo the step itself first"};
const BRANCH_WORDS = {rejected: "rejected", unknown: "unknown outcome"};
// a step's helpers are small: its failure Choice a diamond, the pivot's Unresolved Pass a circle
function nodeShape(node) {
  const cx = node.x + node.width / 2, cy = node.y + node.height / 2;
  if (node.shape === "choice") {
    const points = [[cx, node.y], [node.x + node.width, cy], [cx, node.y + node.height], [node.x, cy]];
    return svg("polygon", {class: "shape", points: points.map(p => p.join(",")).join(" ")});
  }
  if (node.shape === "connector") return svg("circle", {class: "shape", cx, cy, r: node.width / 2});
  return svg("rect", {class: "shape", x: node.x, y: node.y, width: node.width, height: node.height, rx: 6});
}
function drawGraph(graph, outcomes, path, onSelect) {
  const taken = new Set();
  for (let i = 1; i < path.length; i++) taken.add(path[i - 1] + "\u0000" + path[i]);
  const nodes = Object.fromEntries(graph.nodes.map(n => [n.name, n]));
  const root = svg("svg", {width: graph.width, height: graph.height, viewBox: `0 0 ${graph.width} ${graph.height}`,
                           role: "img", "aria-label": "state machine graph"});
  const defs = svg("defs", {});
  const marker = svg("marker", {id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
                                markerWidth: "9", markerHeight: "9", markerUnits: "userSpaceOnUse",
                                orient: "auto-start-reverse"});
  marker.append(svg("path", {d: "M 0 0 L 10 5 L 0 10 z", fill: "#555"}));
  defs.append(marker);
  root.append(defs);
  // the bold path goes on top of the other edges (SVG paints in document order)
  const isTaken = (edge) => taken.has(edge.source + "\u0000" + edge.target);
  const edges = [...graph.edges].sort((a, b) => Number(isTaken(a)) - Number(isTaken(b)));
  for (const edge of edges) {
    if (!nodes[edge.source] || !nodes[edge.target] || !edge.points.length) continue;
    const line = svg("path", {d: edgePath(edge.points), class: "edge " + edge.kind + (isTaken(edge) ? " taken" : ""),
                              "marker-end": "url(#arrow)", "data-source": edge.source, "data-target": edge.target});
    if (edge.branch) {
      line.setAttribute("data-branch", edge.branch);
      const title = svg("title", {});
      title.textContent = BRANCH_TITLES[edge.branch] + ` (${edge.source} → ${edge.target})`;
      line.append(title);
    }
    root.append(line);
  }
  for (const node of graph.nodes) {
    const outcome = outcomes[node.name] || "not_reached";
    const helper = node.shape === "choice" || node.shape === "connector";
    const g = svg("g", {class: `node ${outcome}` + (node.compensation ? " compensation" : "") + (helper ? " helper" : ""),
                        "data-state": node.name, "data-outcome": outcome, "data-type": node.type,
                        "data-shape": node.shape, "data-helper-of": node.helper_of || "",
                        "data-compensation": String(node.compensation), tabindex: "0"});
    g.append(nodeShape(node));
    const title = svg("title", {});
    title.textContent = `${node.name} (${node.type}): ${outcome.replace("_", " ")}` +
                        (node.compensates ? ` — compensates ${node.compensates}` : "") +
                        (node.shape === "choice" ? ` — how a failure of ${node.helper_of} is undone` : "") +
                        (node.shape === "connector" ? ` — ${node.helper_of} may have taken effect: repair by hand` : "");
    g.append(title);
    // a helper is too small for its name (the tooltip, the path and the states table carry it)
    const text = svg("text", {x: node.x + node.width / 2, y: node.y + node.height / 2 + (helper ? 5 : 4), "text-anchor": "middle"});
    text.textContent = node.shape === "choice" ? "?" : node.shape === "connector" ? "!" : node.name;
    g.append(text);
    g.addEventListener("click", () => onSelect(node.name));
    root.append(g);
  }
  return root;
}

function renderEvents(events, selected) {
  const body = document.querySelector("#events tbody");
  body.replaceChildren();
  document.getElementById("events-filter").textContent = selected ? `(state ${selected}; click it again for all)` : "";
  for (const ev of events) {
    if (selected && ev.state !== selected) continue;
    const state = ev.state || "";
    body.append(el("tr", {class: "event", "data-event-id": String(ev.id), "data-event-type": ev.type, "data-state": state},
      el("td", {}, String(ev.id)), el("td", {}, ev.type), el("td", {}, state),
      el("td", {title: fmt(ev.timestamp)}, timeOf(ev.timestamp)), el("td", {}, String(ev.elapsed_ms))));
    const io = el("td", {colspan: "5"});
    for (const [label, value] of [["input", ev.input], ["output", ev.output], ["error", ev.error ? ev.error + ": " + (ev.cause || "") : null]]) {
      if (value === null || value === undefined) continue;
      io.append(el("details", {class: label, open: label === "error" ? "" : null},
                   el("summary", {}, label), el("pre", {}, pretty(value))));
    }
    if (io.childElementCount) body.append(el("tr", {class: "io", "data-io-for": String(ev.id), "data-state": state}, io));
  }
}

async function loadExecution() {
  const arn = decodeURIComponent(location.pathname.slice("/executions/".length));
  const report = await getJSON("/api/executions/" + encodeURIComponent(arn));
  document.title = report.name + " — Step Functions inspector";
  document.getElementById("execution-name").textContent = report.name;
  const fields = document.getElementById("execution-fields");
  fields.replaceChildren();
  const add = (k, v) => fields.append(el("dt", {}, k), el("dd", {}, v));
  add("Status", el("span", {id: "execution-status", "data-status": report.status},
                    badge(report.status, report.saga_outcome ? "muted" : "")));
  add("Saga outcome", el("span", {id: "saga-outcome", "data-outcome": report.saga_outcome || ""}, badge(report.saga_outcome)));
  add("Execution ARN", report.execution_arn);
  add("State machine", report.state_machine_arn);
  add("Started", fmt(report.start_date));
  add("Stopped", fmt(report.stop_date));
  if (report.failures.length) {
    // CompensationFailed's cause is JSON naming what failed: show that, not the JSON
    add("Error", el("span", {id: "failure"}, report.error + ": ",
        ...report.failures.map((f, i) => el("span", {class: "failed-state", "data-state": f.state, "data-error": f.error || ""},
                                              (i ? "; " : "") + f.summary))));
  } else if (report.error || report.cause) add("Error", [report.error, report.cause].filter(Boolean).join(": "));
  const branch = Object.fromEntries(report.states.filter(s => s.branch).map(s => [s.name, s.branch]));
  add("Path", el("span", {id: "path"}, report.path.map(n => branch[n] ? `${n} (${BRANCH_WORDS[branch[n]]})` : n).join(" → ")));
  if (report.compensations.length) add("Compensations", el("span", {id: "compensations"}, report.compensations.join(", ")));
  if (report.trace_id) add("Trace", el("span", {id: "trace-id"}, report.trace_id));
  if (report.console_url) add("Console", el("a", {href: report.console_url, target: "_blank", rel: "noopener"}, "open in AWS console"));

  let selected = null;
  const select = (name) => { selected = selected === name ? null : name; renderEvents(report.events, selected); };
  document.getElementById("graph").replaceChildren(drawGraph(report.graph, report.outcomes, report.path, select));
  const states = document.querySelector("#states tbody");
  states.replaceChildren();
  for (const s of report.states) {
    let comp = s.compensation ? ("compensates " + (s.compensates || "?")) : (s.compensated_by ? "undone by " + s.compensated_by : "");
    // a helper's row says which branch the path took (its name already says whose failure it read)
    if (s.helper_of) comp = s.branch ? BRANCH_WORDS[s.branch] : "";
    states.append(el("tr", {"data-state": s.name, "data-outcome": s.outcome},
      el("td", {}, s.name), el("td", {}, s.type), el("td", {}, badge(s.outcome)), el("td", {}, comp), el("td", {}, s.error || "")));
  }
  renderEvents(report.events, selected);
  document.body.dataset.loaded = "true";
  if (report.status === "RUNNING") setTimeout(() => loadExecution().catch(showError), 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  const run = page === "execution" ? loadExecution : loadIndex;
  run().then(() => { document.body.dataset.loaded = "true"; }).catch(showError);
});
"""
