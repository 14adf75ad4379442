// Run page: live progress (server-sent events), statistics, equity/drawdown and daily P&L
// charts, the paged/sortable/filterable results table with facets, day drill-down, downloads,
// publishing the run into gold datasets.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, el, fillTable, format, toast, latest, localTime, columnsOf, zoneOffset, isMoney, columnLabel, rupeesToPaise } = TL;
  const $ = (id) => document.getElementById(id);
  const root = $("run");
  const runId = root.dataset.run;
  let jobId = root.dataset.job;
  const rupees = (paise) => (paise === null || paise === undefined ? "-"
    : (paise < 0 ? "−₹" : "₹") + (Math.abs(paise) / 100).toLocaleString("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
  const table = { name: "trades", offset: 0, limit: 50, sort: null, descending: false, filters: [], labels: {}, columns: [], timezone: null };

  // ------------------------------------------------------------------ progress
  // The job's own ETA (eta_seconds: the day-cost model of ticklake.backtest.eta, refitted as
  // days finish), counted down each second between two progress events.
  const eta = { seconds: null, elapsed: 0, at: 0, model: null, timer: null };
  const duration = (seconds) => {
    const whole = Math.ceil(Math.max(0, seconds));
    const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
    return h ? `${h} h ${m} m` : m ? `${m} m ${s} s` : `${s} s`;
  };
  function drawEta(state) {
    const box = $("progress-eta");
    if (state.status === "done" && state.started_at && state.finished_at) {
      box.textContent = `done in ${duration((Date.parse(state.finished_at) - Date.parse(state.started_at)) / 1000)}`;
      return;
    }
    if (state.status !== "running" || eta.seconds === null) { box.textContent = ""; return; }
    const since = (performance.now() - eta.at) / 1000;
    box.textContent = `ETA ${duration(eta.seconds - since)} · elapsed ${duration(eta.elapsed + since)}`;
    box.title = eta.model ? `day cost ${eta.model.fixed_seconds} s + ${(eta.model.per_row_seconds * 1e6).toFixed(3)} s per M rows; ${eta.model.source}` : "";
  }
  function trackEta(state) {
    const p = state.progress || {};
    eta.seconds = typeof p.eta_seconds === "number" ? p.eta_seconds : null;
    eta.elapsed = p.elapsed_seconds || 0;
    eta.model = p.eta_model || null;
    eta.at = performance.now();
    clearInterval(eta.timer);
    eta.timer = state.status === "running" && eta.seconds !== null ? setInterval(() => drawEta(state), 1000) : null;
    drawEta(state);
  }
  function showProgress(state) {
    const p = state.progress || {};
    $("progress-box").hidden = false;
    trackEta(state);
    const total = p.days_total || 0;
    const done = p.days_done || 0;
    $("progress-bar").style.width = total ? `${(100 * done) / total}%` : "0%";
    $("progress-bar").className = "bar " + state.status;
    $("progress-text").textContent = `${state.status} · ${done}/${total || "?"} days · ${p.fills || 0} fills · P&L so far ${rupees(p.net_pnl_paise || 0)}` +
      (state.error ? ` · ${state.error.message}` : "");
    $("run-status").textContent = state.status === "done" ? (state.result.status || "complete") : state.status;
    $("run-status").className = "badge " + (state.status === "done" ? "complete" : state.status);
    $("cancel-job").hidden = !["queued", "running"].includes(state.status);
    $("resume-job").hidden = !["interrupted", "cancelled", "failed"].includes(state.status);
  }
  function follow(id) {
    const source = new EventSource(`/api/v1/jobs/${encodeURIComponent(id)}/events`);
    source.addEventListener("progress", (message) => showProgress(JSON.parse(message.data)));
    source.addEventListener("end", (message) => {
      source.close();
      const state = JSON.parse(message.data);
      showProgress(state);
      if (state.status === "done") loadResults();
    });
  }
  // Round trips by facet (ticklake.backtest.stats_breakdown), the report's same tables.
  function renderBreakdowns(breakdowns) {
    $("breakdowns-box").hidden = !breakdowns;
    if (!breakdowns) return;
    const pct = (v) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(1)}%`);
    const money = (v) => (v === null || v === undefined ? "—" : `₹${Number(v).toLocaleString("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`);
    const ratio = (v) => (v === null || v === undefined ? "—" : v === "inf" ? "∞" : Number(v).toFixed(3));
    const hold = (s) => (s === null || s === undefined ? "—" : s >= 3600 ? `${Math.floor(s / 3600)}h ${String(Math.round((s % 3600) / 60)).padStart(2, "0")}m` : `${Math.floor(s / 60)}m ${String(Math.round(s % 60)).padStart(2, "0")}s`);
    const titles = { weekday: "by weekday", entry_window: "by entry window", month: "by month" };
    $("breakdowns").replaceChildren(...Object.entries(titles).map(([facet, title]) => el("div", { "data-facet": facet },
      el("h4", {}, `Round trips ${title}`),
      el("table", { class: "grid small" },
        el("tr", {}, ...["", "round trips", "win rate", "expectancy (₹)", "median (₹)", "profit factor", "hold p50", "net (₹)"].map((h) => el("th", {}, h))),
        ...(breakdowns[facet] || []).map((r) => el("tr", { "data-key": r.key },
          el("td", {}, r.key), el("td", {}, String(r.round_trips)), el("td", {}, pct(r.win_rate)),
          el("td", {}, money(r.expectancy_rupees)), el("td", {}, money(r.median_rupees)),
          el("td", {}, ratio(r.profit_factor)), el("td", {}, hold(r.hold_p50_seconds)),
          el("td", {}, money(r.total_net_paise / 100))))))));
  }

  $("cancel-job").addEventListener("click", async () => {
    try { showProgress(await api("POST", `/jobs/${jobId}/cancel`)); } catch (error) { toast(error.message, true); }
  });
  $("resume-job").addEventListener("click", async () => {
    try {
      const job = await api("POST", `/jobs/${jobId}/resume`);
      jobId = job.job_id;
      history.replaceState(null, "", `/runs/${encodeURIComponent(job.run_id)}?job=${encodeURIComponent(job.job_id)}`);
      follow(jobId);
    } catch (error) { toast(error.message, true); }
  });

  // ---------------------------------------------------------------- results
  // Requests overlap (a tab clicked while the first table loads, a header clicked twice, a
  // variant or a day clicked again): answers come back in any order, the newest one wins.
  const DAY_ROWS = 20;
  const resultsTurn = latest();
  const chartsTurn = latest();
  const tableTurn = latest();
  const dayTurn = latest();
  async function loadResults() {
    const mine = resultsTurn();
    let run;
    try { run = await api("GET", `/runs/${encodeURIComponent(runId)}`); } catch (error) { if (mine()) toast(error.message, true); return; }
    if (!mine()) return;
    $("run-status").textContent = run.status;
    $("run-status").className = "badge " + run.status;
    if (run.status !== "complete") {
      if (!jobId) { $("progress-box").hidden = false; $("progress-text").textContent = `${run.status}: ${run.days_done}/${run.days_total} days done`; }
      return;
    }
    $("results").hidden = false;
    $("run-spec").textContent = JSON.stringify(run.spec, null, 2);
    const isSweep = run.kind === "sweep";
    let s = run.statistics || {};
    if (isSweep) {
      let top;
      try { top = await api("GET", `/runs/${encodeURIComponent(runId)}/tables/variants?limit=1`); }
      catch (error) { if (mine()) toast(error.message, true); return; }
      if (!mine()) return;
      s = top.rows[0] || {};
      $("variant-note").textContent = `sweep of ${run.variants} variants; cards and charts show variant ${s.variant} (rank 1) — click a variant number to see another`;
    }
    const percent = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%");
    // Ratios and averages as the report prints them (the server's format_statistic); a
    // number resting on too few days or round trips is greyed with the reason (see
    // ticklake.backtest.stats_sample), Sharpe and the average day with a bootstrap CI.
    const text = isSweep ? {} : run.statistics_text || {};
    const sample = isSweep ? null : run.sample;
    const ci = (name) => {
      const interval = sample && sample.bootstrap[name];
      if (!interval) return null;
      const show = name === "sharpe_ratio" ? (v) => v.toFixed(2) : (v) => rupees(Math.round(v * 100));
      return `${Math.round(sample.bootstrap.confidence * 100)}% CI ${show(interval[0])} … ${show(interval[1])}`;
    };
    const cards = [
      ["net P&L", rupees(s.total_net_pnl_paise)], ["costs", rupees(s.total_costs_paise)],
      ["days traded", `${s.days_traded ?? "-"} / ${s.days_planned ?? run.days_total}`], ["fills", s.fills ?? "-"],
      ["win rate (days)", percent(s.win_rate_traded_days), "win_rate_traded_days"],
      ["Sharpe", text.sharpe_ratio ?? (s.sharpe_ratio === null || s.sharpe_ratio === undefined ? "-" : Number(s.sharpe_ratio).toFixed(2)), "sharpe_ratio"],
      ["average day", text.average_daily_net_pnl_rupees ?? "-", "average_daily_net_pnl_rupees"],
      ["max drawdown", rupees(s.max_drawdown_paise)],
      ["samples", run.samples ? `first ${run.samples.kept} of ${run.samples.of} fills` : "-"],
    ];
    $("stat-cards").replaceChildren(...cards.filter(([, , name]) => !isSweep || name !== "average_daily_net_pnl_rupees").map(([label, value, name]) => {
      const why = sample && name ? sample.small_sample[name] : null;
      const interval = name ? ci(name) : null;
      return el("div", { class: "card" + (why ? " small-sample" : ""), "data-statistic": name, title: why ? `${why} (at least ${sample.min_days} days and ${sample.min_round_trips} round trips are needed)` : null },
        el("div", { class: "label" }, label), el("div", { class: "value" }, value),
        interval ? el("div", { class: "ci" }, interval) : null,
        why ? el("div", { class: "warn" }, `⚠ ${why.split(":")[0]}: too few to trust`) : null);
    }));
    const downloads = [];
    for (const name of ["variants", "trades", "daily", "attempts", "samples"]) {
      if (!run.files.includes(`${name}.parquet`)) continue;
      downloads.push(el("a", { href: `/api/v1/runs/${encodeURIComponent(runId)}/download/${name}?format=csv`, "data-download": `${name}-csv` }, `${name}.csv`));
      downloads.push(el("a", { href: `/api/v1/runs/${encodeURIComponent(runId)}/download/${name}?format=parquet`, "data-download": `${name}-parquet` }, `${name}.parquet`));
    }
    // The report opens in a new tab (served inline as text/html), it is not a download.
    if (run.files.includes("report.html")) downloads.push(el("a", { href: `/api/v1/runs/${encodeURIComponent(runId)}/files/report.html`, target: "_blank", rel: "noopener", "data-report": "html" }, "report.html ↗"));
    $("downloads").replaceChildren(...downloads);
    renderBreakdowns(run.breakdowns);
    $("table-tabs").querySelectorAll("[data-table]").forEach((button) => {
      const name = button.dataset.table;
      button.hidden = !run.files.includes(`${name}.parquet`);
      button.classList.toggle("active", name === (isSweep ? "variants" : "trades"));
    });
    table.name = isSweep ? "variants" : "trades";
    $("publish-box").hidden = isSweep; // a sweep is published variant by variant, run alone
    drawCharts().catch((error) => toast(error.message, true));
    loadTable(true);
  }

  async function drawCharts(variant) {
    const suffix = variant === undefined ? "" : `?variant=${variant}`;
    const mine = chartsTurn();
    const curve = await api("GET", `/runs/${encodeURIComponent(runId)}/equity${suffix}`);
    if (!mine()) return;
    if (curve.variant !== null && curve.variant !== undefined && variant !== undefined) {
      $("variant-note").textContent = `charts show variant ${curve.variant}`;
    }
    const rs = (values) => values.map((v) => v / 100);
    Plotly.newPlot("equity-chart", [
      { type: "scatter", mode: "lines+markers", name: "equity (₹)", x: curve.date, y: rs(curve.equity_paise), line: { color: "#2563eb" } },
      { type: "scatter", mode: "lines", name: "drawdown (₹)", x: curve.date, y: rs(curve.drawdown_paise).map((v) => -v), fill: "tozeroy", line: { color: "#dc2626" }, yaxis: "y2" },
    ], {
      title: { text: "Equity and drawdown", font: { size: 14 } }, margin: { t: 40, r: 20, b: 40, l: 70 },
      yaxis: { domain: [0.35, 1], title: "equity ₹" }, yaxis2: { domain: [0, 0.28], title: "drawdown ₹" }, showlegend: false,
      xaxis: { type: "category" },
    }, { responsive: true, displaylogo: false });
    Plotly.newPlot("daily-chart", [
      { type: "bar", x: curve.date, y: rs(curve.net_pnl_paise), marker: { color: curve.net_pnl_paise.map((v) => (v >= 0 ? "#16a34a" : "#dc2626")) } },
    ], { title: { text: "Daily net P&L (₹)", font: { size: 14 } }, margin: { t: 40, r: 20, b: 40, l: 60 }, xaxis: { type: "category" } }, { responsive: true, displaylogo: false });
  }

  async function loadTable(withFacets) {
    const query = new URLSearchParams({ offset: table.offset, limit: table.limit, descending: table.descending, facets: withFacets ? "true" : "false" });
    if (table.sort) query.set("sort", table.sort);
    table.filters.forEach((f) => query.append("filter", f));
    const shown = table.name;
    const mine = tableTurn();
    let page;
    try { page = await api("GET", `/runs/${encodeURIComponent(runId)}/tables/${shown}?${query}`); }
    catch (error) { if (mine()) toast(error.message, true); return; }
    if (!mine()) return;
    table.columns = page.columns;
    table.timezone = page.timezone;
    $("results-table").dataset.table = shown; // which table the rows are from (tests wait on it)
    fillTable($("results-table"), page.columns, page.rows, {
      sort: table.sort, descending: table.descending, zone: page,
      onHeader: (name) => {
        if (table.sort === name) table.descending = !table.descending; else { table.sort = name; table.descending = false; }
        table.offset = 0; loadTable(false);
      },
      onCell: (name, row, td) => {
        if (name === "date" && row.date) {
          td.classList.add("link");
          td.addEventListener("click", () => loadDay(row.date, row.variant));
        }
        if (name === "variant" && row.variant !== null && row.variant !== undefined) {
          td.classList.add("link");
          td.addEventListener("click", () => drawCharts(row.variant).catch((error) => toast(error.message, true)));
        }
      },
    });
    const last = Math.min(page.offset + page.rows.length, page.total);
    $("page-info").textContent = page.total ? `${page.offset + 1}–${last} of ${page.total.toLocaleString()}${page.total !== page.unfiltered_total ? ` (filtered from ${page.unfiltered_total.toLocaleString()})` : ""}` : "no rows";
    $("page-prev").disabled = page.offset === 0;
    $("page-next").disabled = last >= page.total;
    const columnSelect = $("filter-column");
    const chosen = columnSelect.value;
    columnSelect.replaceChildren(...page.columns.map((c) => el("option", { value: c.name }, columnLabel(c.name))));
    if (chosen && page.columns.some((c) => c.name === chosen)) columnSelect.value = chosen;
    unitHint();
    if (withFacets) renderFacets(page.facets);
    renderFilters();
  }
  function renderFacets(facets) {
    $("facets").replaceChildren(...Object.entries(facets).map(([column, values]) => el("div", { class: "facet" },
      el("strong", {}, column + ": "),
      values.map((v) => el("button", { type: "button", class: "chip", "data-facet": `${column}=${v.value}`, onclick: () => addFilter(`${column}:eq:${v.value}`) }, `${v.value ?? "null"} (${v.count})`)))));
  }
  function renderFilters() {
    $("active-filters").replaceChildren(...table.filters.map((f) => el("span", { class: "chip on", "data-filter": f }, table.labels[f] || f,
      el("button", { type: "button", class: "remove", onclick: () => { table.filters = table.filters.filter((x) => x !== f); table.offset = 0; loadTable(true); } }, "×"))));
  }
  function addFilter(text, label) {
    if (!table.filters.includes(text)) table.filters.push(text);
    if (label) table.labels[text] = label;
    table.offset = 0;
    loadTable(true);
  }
  $("filter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("filter-column").value;
    let value = $("filter-value").value.trim();
    // The table shows instants in exchange time, so a time typed without a zone means that
    // time there: send it with the zone's offset (the API reads a bare time as UTC).
    const column = table.columns.find((c) => c.name === name);
    if (column && column.local && table.timezone && /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$/.test(value)) {
      value = value.replace(" ", "T");
      value += zoneOffset(table.timezone, value);
    }
    const op = $("filter-op").value;
    let label = null;
    if (isMoney(name) && op !== "contains") {
      // The column shows rupees, so the value typed is rupees: the API filters in paise.
      const typed = value;
      try { value = op === "in" ? value.split(",").filter((v) => v.trim()).map(rupeesToPaise).join(",") : rupeesToPaise(value); }
      catch (error) { toast(error.message, true); return; }
      label = `${columnLabel(name)} ${$("filter-op").selectedOptions[0].textContent} ₹${typed}`;
    }
    addFilter(`${name}:${op}:${value}`, label);
  });
  function unitHint() {
    $("filter-value").placeholder = isMoney($("filter-column").value) ? "value in ₹ (e.g. 300.50)" : "value";
  }
  $("filter-column").addEventListener("change", unitHint);
  $("table-tabs").querySelectorAll("[data-table]").forEach((button) => button.addEventListener("click", () => {
    $("table-tabs").querySelectorAll("[data-table]").forEach((b) => b.classList.toggle("active", b === button));
    Object.assign(table, { name: button.dataset.table, offset: 0, sort: null, descending: false, filters: [] });
    loadTable(true);
  }));
  $("page-prev").addEventListener("click", () => { table.offset = Math.max(0, table.offset - table.limit); loadTable(false); });
  $("page-next").addEventListener("click", () => { table.offset += table.limit; loadTable(false); });
  $("page-size").addEventListener("change", (event) => { table.limit = Number(event.target.value); table.offset = 0; loadTable(false); });

  // The day's fill prices by leg against the time of day in exchange time (a date axis
  // over the day's wall-clock times: ticks read "09:30", the date is in the title).
  const FILL_MARKS = {
    entry: "triangle-up", rebalance_open: "diamond", rebalance_close: "diamond-open",
    exit_time: "square", exit_condition: "square-open", leg_stop: "x", stop_loss: "x", trailing_stop: "x-open",
    leg_target: "star", target: "star", forced_end_of_day: "circle-open", marked_end_of_day: "circle-open",
  };
  // The day's P&L through the session (runs with pnl_per_second): equity and drawdown.
  function drawDayPnl(day, detail) {
    const box = $("day-pnl-chart");
    const path = detail.pnl_path;
    box.hidden = !path;
    if (!path) { Plotly.purge(box); return; }
    const x = path.ts_local.map(localTime);
    Plotly.newPlot("day-pnl-chart", [
      { type: "scatter", mode: "lines", name: "intraday P&L (₹)", x, y: path.pnl_paise.map((v) => v / 100), line: { color: "#2563eb", shape: "hv" } },
      { type: "scatter", mode: "lines", name: "drawdown (₹)", x, y: path.drawdown_paise.map((v) => -v / 100), fill: "tozeroy", line: { color: "#dc2626", shape: "hv" } },
    ], {
      title: { text: `Intraday P&L and drawdown (₹), ${day}, every ${path.step_seconds} s, ${detail.timezone_label}`, font: { size: 14 } },
      margin: { t: 40, r: 20, b: 40, l: 60 },
      xaxis: { type: "date", tickformat: "%H:%M", hoverformat: "%H:%M:%S", title: { text: `time of day (${detail.timezone_abbreviation})` }, automargin: true },
      yaxis: { title: "₹" },
    }, { responsive: true, displaylogo: false });
  }

  function drawDayChart(day, detail) {
    const chart = $("day-chart");
    chart.hidden = !detail.fills.length;
    if (!detail.fills.length) { Plotly.purge(chart); return; }
    const legs = [...new Set(detail.fills.map((f) => f.leg))];
    const traces = legs.map((leg) => {
      const rows = detail.fills.filter((f) => f.leg === leg);
      // Distinct marks per kind of fill: entries, re-targets, exits, stops, targets, forced.
      return { type: "scatter", mode: "lines+markers", name: leg, line: { shape: "hv" }, x: rows.map((f) => localTime(f.ts_local)), y: rows.map((f) => f.price_paise / 100),
        text: rows.map((f) => f.reason), hovertemplate: "%{text}: ₹%{y}<extra>%{fullData.name}</extra>",
        marker: { size: 9, symbol: rows.map((f) => FILL_MARKS[f.reason] || "circle") } };
    });
    const shown = detail.fills.length < detail.fills_total ? ` (first ${detail.fills.length} fills)` : "";
    Plotly.newPlot("day-chart", traces, {
      title: { text: `Fill prices by leg (₹), ${day}${shown}, ${detail.timezone_label}`, font: { size: 14 } },
      margin: { t: 40, r: 20, b: 40, l: 60 },
      xaxis: { type: "date", tickformat: "%H:%M", hoverformat: "%H:%M:%S", title: { text: `time of day (${detail.timezone_abbreviation})` }, automargin: true },
      yaxis: { title: "price ₹" },
    }, { responsive: true, displaylogo: false });
  }

  async function loadDay(day, variant) {
    const mine = dayTurn();
    // A sweep's day is one variant's: the row's variant (the server defaults to rank 1).
    const which = variant === undefined || variant === null ? "" : `&variant=${variant}`;
    try {
      // Up to 1000 fills for the chart of the day; the table lists the first DAY_ROWS.
      const detail = await api("GET", `/runs/${encodeURIComponent(runId)}/days/${day}?limit=1000${which}`);
      if (!mine()) return;
      $("day-detail").hidden = false;
      const label = detail.variant === undefined ? day : `${day} (variant ${detail.variant})`;
      const fills = detail.fills.slice(0, DAY_ROWS);
      $("day-title").textContent = `${label}: first ${fills.length} of ${detail.fills_total} fills`;
      const s = detail.summary;
      const clock = (text) => (text ? localTime(text).slice(11, 16) : "-");
      $("day-summary").textContent = `${s.status}${s.skip_reason ? " (" + s.skip_reason + ")" : ""} · net ${rupees(s.net_pnl_paise)} · costs ${rupees(s.costs_paise)} · underlying from ${s.underlying_source || "-"} · expiry ${s.expiry || "-"}` +
        ` · first entry ${clock(detail.summary_local.first_entry_ts)}, last exit ${clock(detail.summary_local.last_exit_ts)} ${detail.timezone_label}`;
      fillTable($("day-fills"), columnsOf(fills), fills, { zone: detail });
      fillTable($("day-attempts"), columnsOf(detail.attempts.slice(0, DAY_ROWS)), detail.attempts.slice(0, DAY_ROWS), { zone: detail });
      drawDayChart(day, detail);
      drawDayPnl(day, detail);
      $("day-detail").scrollIntoView({ behavior: "smooth" });
    } catch (error) { if (mine()) toast(error.message, true); }
  }

  // ---------------------------------------------------------------- publish
  // POST (with the CSRF header, like every change) writes the run into gold datasets;
  // `#publish-box[data-state]` says where it is: publishing, published or failed.
  $("publish-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = $("publish-box");
    const name = $("publish-name").value.trim();
    $("publish-run").disabled = true;
    box.dataset.state = "publishing";
    $("publish-status").textContent = "publishing…";
    try {
      const result = await api("POST", `/runs/${encodeURIComponent(runId)}/publish`, name ? { as_name: name } : {});
      $("published-datasets").replaceChildren(...result.datasets.map((d) => el("li", { "data-dataset": d.dataset },
        el("code", {}, d.dataset), ` — ${d.rows.toLocaleString()} rows of this run, ${d.partitions} partition${d.partitions === 1 ? "" : "s"}` +
        (d.partitions_changed ? ` (${d.partitions_changed} written)` : " (unchanged: already published)"))));
      $("publish-sql").textContent = result.example_sql;
      $("publish-sql-box").hidden = false;
      $("publish-status").textContent = `published ${result.run_id} (spec ${result.spec_hash})`;
      box.dataset.state = "published";
    } catch (error) {
      $("publish-status").textContent = "";
      box.dataset.state = "failed";
      toast(error.message, true);
    } finally {
      $("publish-run").disabled = false;
    }
  });
  $("publish-sql-copy").addEventListener("click", async () => {
    const text = $("publish-sql").textContent;
    try {
      await navigator.clipboard.writeText(text);
      toast("SQL copied");
    } catch (error) {
      // No clipboard permission: select the text so Ctrl+C copies it.
      const range = document.createRange();
      range.selectNodeContents($("publish-sql"));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      toast("select and copy the SQL (the clipboard is not available here)");
    }
  });

  if (jobId) {
    api("GET", `/jobs/${encodeURIComponent(jobId)}`).then((state) => {
      showProgress(state);
      if (["queued", "running"].includes(state.status)) follow(jobId);
      else loadResults();
    }).catch(() => loadResults());
  } else {
    loadResults();
  }
  void format;
});
