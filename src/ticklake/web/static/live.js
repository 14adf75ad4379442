// Live page: self-refreshing candles (volume by direction, spread, missing seconds,
// recorded gaps), the heartbeat and today's gaps.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, el, fillTable, toast, latest, timeOfDayAxis } = TL;
  const $ = (id) => document.getElementById(id);
  const turn = latest();
  const statusTurn = latest();
  let timer = null;

  function query() {
    const q = new URLSearchParams();
    for (const [key, value] of new FormData($("live-form"))) if (value) q.set(key, value);
    return q;
  }

  async function loadCandles() {
    if (!$("live-dataset").value) return;
    const q = query();
    $("live-csv").href = `/api/v1/live/candles.csv?${q}`;
    const mine = turn();
    const data = await api("GET", `/live/candles?${q}`);
    if (!mine()) return;
    const bars = data.bars;
    const xs = bars.map((b) => b.ts_local);
    $("live-info").textContent = data.newest === null
      ? `${data.dataset}: no rows yet`
      : `${data.dataset} · ${data.instrument} · ${bars.length} bars of ${data.interval} · last ${data.minutes} min up to ${bars.length ? xs[xs.length - 1] : "-"} ${data.timezone_abbreviation} · refreshed ${new Date().toLocaleTimeString()}`;
    const hasSpread = bars.some((b) => b.spread !== null);
    const colours = bars.map((b) => (b.direction === "up" ? "#2a9d5c" : "#d1495b"));
    const traces = [
      { type: "candlestick", name: "price", x: xs, open: bars.map((b) => b.open), high: bars.map((b) => b.high), low: bars.map((b) => b.low), close: bars.map((b) => b.close), xaxis: "x", yaxis: "y" },
      { type: "bar", name: "volume", x: xs, y: bars.map((b) => b.volume), marker: { color: colours }, xaxis: "x", yaxis: "y2" },
      { type: "bar", name: "missing seconds", x: xs, y: bars.map((b) => b.missing_seconds), marker: { color: "#999" }, xaxis: "x", yaxis: "y4" },
    ];
    if (hasSpread) traces.push({ type: "scatter", mode: "lines", name: "spread", x: xs, y: bars.map((b) => b.spread), line: { color: "#c60" }, xaxis: "x", yaxis: "y3" });
    const layout = {
      margin: { t: 10, r: 20, b: 50, l: 60 },
      xaxis: { ...timeOfDayAxis(xs), rangeslider: { visible: false } },
      yaxis: { domain: [0.42, 1], title: "price" },
      yaxis2: { domain: [0.24, 0.4], title: "volume" },
      yaxis3: { domain: [0.1, 0.22], title: "spread" },
      yaxis4: { domain: [0, 0.08], title: "missing s" },
      showlegend: false,
      uirevision: `${data.dataset}/${data.instrument}/${data.interval}`,
    };
    Plotly.react("live-chart", traces, layout, { responsive: true, displaylogo: false });
  }

  async function loadStatus() {
    const mine = statusTurn();
    const status = await api("GET", "/live/status");
    if (!mine()) return;
    const badge = $("live-health");
    badge.textContent = status.status;
    badge.className = "badge " + status.status.toLowerCase();
    const beat = status.heartbeat;
    $("live-reasons").textContent = beat
      ? `heartbeat ${beat.written_at} · ${beat.reasons.join("; ") || "nothing to report"}`
      : "no heartbeat: is `ticklake orchestrate` running?";
    const streams = beat ? Object.entries(beat.streams).map(([name, s]) => ({ stream: name, ...s })) : [];
    fillTable($("live-streams"), ["stream", "last_message", "rate_per_second", "latency_ms_p50", "latency_ms_p95", "gaps_today", "unrecovered_gaps_today"].map((name) => ({ name })), streams);
    $("live-verdicts").replaceChildren(...Object.entries(status.verdicts).map(([name, text]) => el("li", {}, `${name}: ${text}`)));
    if (!Object.keys(status.verdicts).length) $("live-verdicts").replaceChildren(el("li", {}, "no validation job"));
    const gaps = status.gaps.map((g) => ({ stream: g.stream, reason: g.reason, recovered: g.recovered ? "yes" : "no", from_id: g.from_id, to_id: g.to_id }));
    fillTable($("live-gaps"), ["stream", "reason", "recovered", "from_id", "to_id"].map((name) => ({ name })), gaps);
  }

  async function refresh() {
    try { await Promise.all([loadCandles(), loadStatus()]); }
    catch (error) { toast(error.message, true); }
  }

  function schedule() {
    clearInterval(timer);
    timer = setInterval(refresh, Number($("live-refresh").value) * 1000);
  }

  $("live-form").addEventListener("change", (event) => {
    if (event.target.id === "live-refresh") schedule();
    else refresh();
  });
  $("live-form").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  refresh();
  schedule();
});
