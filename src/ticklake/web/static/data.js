// Data page: dataset preview, candlestick chart, time-travel option chain, SQL box.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, el, fillTable, toast, latest, timeOfDayAxis } = TL;
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------- preview
  const preview = { dataset: null, offset: 0, limit: 100 };
  const previewTurn = latest();
  async function loadPreview() {
    const day = $("preview-day").value;
    const query = new URLSearchParams({ offset: preview.offset, limit: preview.limit });
    if (day) query.set("date", day);
    const mine = previewTurn();
    try {
      const page = await api("GET", `/datasets/${encodeURIComponent(preview.dataset)}/preview?${query}`);
      if (!mine()) return;
      fillTable($("preview-rows"), page.columns, page.rows);
      $("preview-info").textContent = page.total
        ? `rows ${page.offset + 1}–${page.offset + page.rows.length} of ${page.total.toLocaleString()} on ${page.date}`
        : "no rows";
    } catch (error) { if (mine()) toast(error.message, true); }
  }
  document.querySelectorAll("[data-preview]").forEach((link) => link.addEventListener("click", async (event) => {
    event.preventDefault();
    preview.dataset = link.dataset.preview;
    preview.offset = 0;
    $("preview").hidden = false;
    $("preview-title").textContent = preview.dataset;
    // Another dataset clicked meanwhile: its days, not these, belong in the list.
    const mine = previewTurn();
    let parts;
    try { parts = await api("GET", `/datasets/${encodeURIComponent(preview.dataset)}/partitions`); }
    catch (error) { if (mine()) toast(error.message, true); return; }
    if (!mine()) return;
    $("preview-day").replaceChildren(...parts.slice().reverse().map((p) => el("option", { value: p.date }, `${p.date} (${p.rows.toLocaleString()} rows)`)));
    loadPreview();
  }));
  $("preview-day").addEventListener("change", () => { preview.offset = 0; loadPreview(); });
  $("preview-next").addEventListener("click", () => { preview.offset += preview.limit; loadPreview(); });
  $("preview-prev").addEventListener("click", () => { preview.offset = Math.max(0, preview.offset - preview.limit); loadPreview(); });
  const wanted = new URLSearchParams(location.search).get("dataset");
  if (wanted) { const link = document.querySelector(`[data-preview="${CSS.escape(wanted)}"]`); if (link) link.click(); }

  // --------------------------------------------------------------- chart
  function syncDates(select, startInput, endInput) {
    const option = select.selectedOptions[0];
    if (!option) return;
    if (startInput) startInput.value = option.dataset.last || "";
    if (endInput) endInput.value = option.dataset.last || "";
  }
  // The dataset changes, then the day: a slow answer for the other day must not win.
  const instrumentsTurn = latest();
  async function loadInstruments() {
    const dataset = $("chart-dataset").value;
    if (!dataset) return;
    const query = new URLSearchParams({ dataset });
    if ($("chart-start").value) query.set("date", $("chart-start").value);
    const mine = instrumentsTurn();
    const names = await api("GET", `/instruments?${query}`);
    if (!mine()) return;
    const chosen = $("chart-instrument").value;
    $("chart-instrument").replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(chosen)) $("chart-instrument").value = chosen;
  }
  $("chart-dataset").addEventListener("change", () => { syncDates($("chart-dataset"), $("chart-start"), $("chart-end")); loadInstruments().catch((e) => toast(e.message, true)); });
  // The contracts of an options dataset change from day to day: list those of the first day.
  $("chart-start").addEventListener("change", () => loadInstruments().catch((e) => toast(e.message, true)));
  syncDates($("chart-dataset"), $("chart-start"), $("chart-end"));
  let instrumentsLoaded = false;
  window.addEventListener("tl-tab", (event) => {
    if (event.detail === "chart" && !instrumentsLoaded) { instrumentsLoaded = true; loadInstruments().catch((e) => toast(e.message, true)); }
  });
  const candlesTurn = latest();
  $("chart-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const query = new URLSearchParams(new FormData(event.target));
    const mine = candlesTurn();
    try {
      const bars = await api("GET", `/candles?${query}`);
      if (!mine()) return;
      $("chart-source").textContent = `${bars.instrument} · ${bars.interval} · ${bars.source} · times in ${bars.timezone_label} · ${bars.ts.length} bars`;
      const hasSpread = bars.spread.some((v) => v !== null);
      const traces = [
        { type: "candlestick", name: "price", x: bars.ts, open: bars.open, high: bars.high, low: bars.low, close: bars.close, xaxis: "x", yaxis: "y" },
        { type: "bar", name: "volume", x: bars.ts, y: bars.volume, xaxis: "x", yaxis: "y2", marker: { color: "#8aa" } },
      ];
      if (hasSpread) traces.push({ type: "scatter", mode: "lines", name: "spread", x: bars.ts, y: bars.spread, xaxis: "x", yaxis: "y3", line: { color: "#c60" } });
      Plotly.newPlot("candles", traces, {
        margin: { t: 20, r: 20, b: 50, l: 60 },
        grid: { rows: hasSpread ? 3 : 2, columns: 1, roworder: "top to bottom" },
        // Bars in exchange time on a category axis (no gaps for nights), ticked at times
        // of day: "09:15" / "10:00", each day's first tick with its date.
        xaxis: { ...timeOfDayAxis(bars.ts), rangeslider: { visible: false } },
        yaxis: { domain: hasSpread ? [0.45, 1] : [0.3, 1], title: "price" },
        yaxis2: { domain: hasSpread ? [0.22, 0.42] : [0, 0.27], title: "volume" },
        yaxis3: { domain: [0, 0.18], title: "spread" },
        showlegend: false, dragmode: "zoom",
      }, { responsive: true, displaylogo: false });
    } catch (error) { if (mine()) toast(error.message, true); }
  });

  // --------------------------------------------------------------- chain
  syncDates($("chain-dataset"), $("chain-date"));
  $("chain-dataset").addEventListener("change", () => syncDates($("chain-dataset"), $("chain-date")));
  function quoteCells(quote, atm, side) {
    const keys = ["bid", "ask", "last", "quote_age_seconds", "iv", "delta"];
    const cells = keys.map((key) => {
      const value = quote ? quote[key] : null;
      let text = "";
      if (value !== null && value !== undefined) {
        text = key === "iv" ? (value * 100).toFixed(2) + "%" : key === "delta" ? value.toFixed(3) : key === "quote_age_seconds" ? value.toFixed(0) + " s" : value.toFixed(2);
      }
      return el("td", { class: "num" + (quote && quote.stale ? " stale" : ""), "data-side": side, "data-key": key }, text);
    });
    return side === "CE" ? cells : cells.reverse();
  }
  const chainTurn = latest();
  async function loadChain() {
    const form = $("chain-form");
    const query = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) query.set(key, value);
    const mine = chainTurn();
    try {
      const chain = await api("GET", `/chain?${query}`);
      if (!mine()) return;
      const expiry = $("chain-expiry");
      const current = expiry.value;
      expiry.replaceChildren(el("option", { value: "" }, "nearest"), ...chain.expiries.map((e) => el("option", { value: e }, e)));
      expiry.value = chain.expiries.includes(current) ? current : "";
      $("chain-info").textContent = chain.spot === null
        ? `no quotes at ${chain.date} ${chain.time} ${chain.timezone_label}`
        : `${chain.date} ${chain.time} ${chain.timezone_label} · expiry ${chain.expiry} · spot ${chain.spot.toFixed(2)} (${chain.spot_source}) · ATM ${chain.atm_strike}`;
      const table = $("chain-table");
      const headers = ["bid", "ask", "last", "age", "IV", "delta"];
      table.replaceChildren(
        el("thead", {}, el("tr", {}, el("th", { colspan: 6 }, "CE"), el("th", {}, "strike"), el("th", { colspan: 6 }, "PE")),
          el("tr", {}, headers.map((h) => el("th", {}, h)), el("th", {}, ""), headers.slice().reverse().map((h) => el("th", {}, h)))),
        el("tbody", {}, chain.rows.map((row) => el("tr", { class: row.atm ? "atm" : "", "data-strike": row.strike },
          quoteCells(row.CE, row.atm, "CE"), el("td", { class: "strike" }, row.strike), quoteCells(row.PE, row.atm, "PE")))),
      );
    } catch (error) { if (mine()) toast(error.message, true); }
  }
  $("chain-form").addEventListener("submit", (event) => { event.preventDefault(); loadChain(); });
  document.querySelectorAll("[data-step]").forEach((button) => button.addEventListener("click", () => {
    const input = $("chain-time");
    const [h, m, s] = (input.value || "09:15:00").split(":").map(Number);
    let total = h * 3600 + m * 60 + (s || 0) + Number(button.dataset.step);
    total = Math.max(0, Math.min(86399, total));
    const pad = (n) => String(n).padStart(2, "0");
    input.value = `${pad(Math.floor(total / 3600))}:${pad(Math.floor(total / 60) % 60)}:${pad(total % 60)}`;
    loadChain();
  }));

  // ----------------------------------------------------------------- SQL
  // Run pressed again before the answer: only the last query's answer (or error) is shown.
  const sqlTurn = latest();
  $("sql-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("sql-error").hidden = true;
    $("sql-info").textContent = "running…";
    const mine = sqlTurn();
    try {
      const result = await api("POST", "/sql", { query: $("sql-query").value });
      if (!mine()) return;
      fillTable($("sql-result"), result.columns, result.rows);
      $("sql-info").textContent = `${result.row_count.toLocaleString()} row(s)${result.truncated ? " (truncated at the row cap)" : ""} in ${result.elapsed_seconds.toFixed(3)} s`;
    } catch (error) {
      if (!mine()) return;
      $("sql-result").replaceChildren();
      $("sql-info").textContent = "";
      $("sql-error").textContent = error.message;
      $("sql-error").hidden = false;
    }
  });
});
