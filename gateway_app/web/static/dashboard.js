// The dashboard page: polls /dashboard/data (cluster-wide figures, computed by the worker) every
// POLL_MS and draws them. No build step: plain browser JavaScript and the vendored uPlot.
"use strict";

const POLL_MS = 2000;
const POINTS = 150; // points kept per chart: five minutes at one poll every two seconds
const TOKEN_KEY = "gateway-dashboard-token";

const series = { t: [], rps: [], p50: [], p95: [], p99: [], overhead: [] };
let charts = null;

function $(id) { return document.getElementById(id); }

function fmt(value, digits = 0) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 1 ? `${fmt(value * 1000, 1)} ms` : `${fmt(value, 2)} s`;
}

function cell(text, numeric) {
  const td = document.createElement("td");
  td.textContent = text;
  if (numeric) td.className = "n";
  return td;
}

// Fills a table: `columns` are [heading, row => text, numeric?]; an empty list says so.
function table(id, columns, rows, empty = "none") {
  const el = $(id);
  el.replaceChildren();
  const head = document.createElement("tr");
  for (const [heading, , numeric] of columns) {
    const th = document.createElement("th");
    th.textContent = heading;
    if (numeric) th.className = "n";
    head.appendChild(th);
  }
  el.appendChild(head);
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(empty, false);
    td.colSpan = columns.length;
    td.className = "empty";
    tr.appendChild(td);
    el.appendChild(tr);
    return;
  }
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const [, value, numeric] of columns) tr.appendChild(cell(value(row), numeric));
    el.appendChild(tr);
  }
}

function makeCharts() {
  const width = el => Math.max(300, $(el).clientWidth || 400);
  const axes = [{}, { size: 60 }];
  const rps = new uPlot({
    width: width("chart-rps"), height: 200, axes,
    series: [{}, { label: "requests/s", stroke: "#2b6cb0", width: 2, fill: "rgba(43,108,176,.08)" }],
  }, [[], []], $("chart-rps"));
  const latency = new uPlot({
    width: width("chart-latency"), height: 200, axes,
    series: [{},
      { label: "p50", stroke: "#2f855a", width: 2 },
      { label: "p95", stroke: "#d69e2e", width: 2 },
      { label: "p99", stroke: "#c53030", width: 2 },
      { label: "gateway overhead p99", stroke: "#6b46c1", width: 1, dash: [4, 4] }],
  }, [[], [], [], [], []], $("chart-latency"));
  return { rps, latency };
}

function push(name, value) {
  series[name].push(value === undefined ? null : value);
  if (series[name].length > POINTS) series[name].shift();
}

function draw(data) {
  $("cluster").textContent = `${data.workers.length} worker(s)` +
    (data.partial ? ` · partial (partitions ${data.missing_partitions.join(", ") || "?"} not counted)` : "");
  $("cluster").className = data.partial ? "bad" : "muted";
  $("updated").textContent = `updated ${data.at}` +
    (data.window_seconds ? ` · rates over ${fmt(data.window_seconds, 1)} s` : "");

  $("rps").textContent = fmt(data.requests_per_second, 1);
  $("replies-total").textContent = fmt(data.replies.total);
  $("in-flight").textContent = fmt(data.in_flight);
  $("pending").textContent = fmt(data.pending_messages);
  $("lag-total").textContent = fmt(data.consumer_lag.total);
  $("dlq-rate").textContent = fmt(data.dlq.per_second, 2);
  $("overhead").textContent = `${seconds(data.overhead.p50)} / ${seconds(data.overhead.p99)}`;

  table("replies", [["status", r => r[0]], ["total", r => fmt(r[1]), true],
                    ["per s", r => fmt(data.replies.per_second[r[0]], 2), true]],
        Object.entries(data.replies.by_status));
  table("latency", [["provider", r => r.provider], ["calls", r => fmt(r.calls), true],
                    ["p50", r => seconds(r.p50), true], ["p95", r => seconds(r.p95), true],
                    ["p99", r => seconds(r.p99), true]], data.latency, "no calls in the window");
  table("tokens", [["provider", r => r.provider], ["model", r => r.model], ["input", r => fmt(r.input), true],
                   ["output", r => fmt(r.output), true], ["cost USD", r => r.cost_usd, true]], data.tokens);
  table("top-cost", [["agent", r => r.agent_id], ["requests", r => fmt(r.requests), true],
                     ["cost USD", r => r.cost_usd, true]], data.top_agents.by_cost);
  table("top-deferrals", [["agent", r => r.agent_id], ["deferrals", r => fmt(r.deferrals), true]],
        data.top_agents.by_deferrals);
  table("breakers", [["provider", r => r.provider], ["model", r => r.model], ["closed", r => fmt(r.closed), true],
                     ["open", r => fmt(r.open), true], ["half open", r => fmt(r.half_open), true]], data.breakers);
  const limits = [["rate-limit deferrals", data.limits.deferrals], ["budget waits", data.limits.budget_waits],
                  ["retries", data.retries], ["fallbacks", data.fallbacks],
                  ...Object.entries(data.limits.rejections).map(([code, n]) => [`rejected: ${code}`, n]),
                  ...Object.entries(data.cache).map(([result, n]) => [`cache ${result}`, n])];
  table("limits", [["what", r => r[0]], ["count", r => fmt(r[1]), true]], limits);
  table("dlq", [["code", r => r[0]], ["records", r => fmt(r[1]), true]], Object.entries(data.dlq.by_code));
  table("moderation", [["stage", r => r.stage], ["check", r => r.check], ["verdict", r => r.verdict],
                       ["action", r => r.action], ["count", r => fmt(r.count), true]], data.moderation);
  table("lag", [["topic", r => r.topic], ["partitions", r => r.partitions, true], ["lag", r => fmt(r.lag), true],
                ["largest", r => fmt(r.max_partition_lag), true]], data.consumer_lag.topics);
  table("workers", [["worker", r => r.url], ["answered", r => (r.ok ? "yes" : "no")],
                    ["partitions", r => r.partitions.join(", ")]], data.workers);

  push("t", Date.now() / 1000);
  push("rps", data.requests_per_second);
  push("p50", data.latency_all.p50);
  push("p95", data.latency_all.p95);
  push("p99", data.latency_all.p99);
  push("overhead", data.overhead.p99);
  charts = charts || makeCharts();
  charts.rps.setData([series.t, series.rps]);
  charts.latency.setData([series.t, series.p50, series.p95, series.p99, series.overhead]);
}

async function poll() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  try {
    const response = await fetch("/dashboard/data", token ? { headers: { Authorization: `Bearer ${token}` } } : {});
    if (response.status === 401 || response.status === 403) {
      $("token-form").hidden = false;
      $("token-error").textContent = token ? "this token may not read the figures" : "";
      $("cluster").textContent = "a read token is needed";
      return; // no more polling until a token is given
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    draw(await response.json());
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (error) {
    $("cluster").textContent = `not reachable: ${error.message}`;
    $("cluster").className = "bad";
  }
  setTimeout(poll, POLL_MS);
}

$("token-form").addEventListener("submit", event => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value);
  $("token").value = "";
  $("token-form").hidden = true;
  poll();
});

poll();
