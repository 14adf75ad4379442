// SQL page: schema tree, editor (read-only unless the server allows writes), paged
// results, a chart of the result, CSV / Parquet downloads.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, el, toast, latest, cookie } = TL;
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 100;
  const editor = $("sql-editor");
  const writeBox = $("sql-write"); // only there when the server allows writes
  const state = { result: null, query: "", page: 0 };

  // ------------------------------------------------------------------ schema tree
  function insert(text) {
    const start = editor.selectionStart ?? editor.value.length;
    const end = editor.selectionEnd ?? start;
    editor.value = editor.value.slice(0, start) + text + editor.value.slice(end);
    editor.focus();
    editor.selectionStart = editor.selectionEnd = start + text.length;
  }
  function nameLink(label, inserted) {
    return el("a", { class: "tree-name", href: "#", "data-insert": inserted, title: `insert ${inserted}`,
      onclick: (event) => { event.preventDefault(); insert(inserted); } }, label);
  }
  function columnList(columns) {
    return el("ul", {}, columns.map((c) => el("li", { "data-column": c.name }, nameLink(c.name, c.name), el("span", { class: "type" }, c.type))));
  }
  function node(label, inserted, badge, columns, attrs = {}) {
    return el("details", attrs, el("summary", {}, nameLink(label, inserted), " ", badge), columnList(columns));
  }
  const treeTurn = latest();
  async function loadTree() {
    const mine = treeTurn();
    let tree;
    try { tree = await api("GET", "/sql/schema"); } catch (error) {
      if (mine()) { $("tree-error").textContent = error.message; $("tree-error").hidden = false; }
      return;
    }
    if (!mine()) return;
    const lake = el("details", { open: true, "data-section": "lake" }, el("summary", {}, "Lake"),
      tree.layers.map((layer) => el("details", { open: true, "data-layer": layer.layer }, el("summary", {}, layer.layer),
        layer.datasets.map((d) => node(d.name, d.qualified, el("span", { class: "badge lake", title: `generated view over the ${d.schema} dataset${d.bare ? `; also ${d.name}` : ""}` }, "lake"),
          d.columns, { "data-object": d.qualified, "data-generated": "true" })))));
    const warehouse = el("details", { open: true, "data-section": "warehouse" }, el("summary", {}, "Warehouse"),
      tree.warehouse.length ? tree.warehouse.map((schema) => el("details", { open: true, "data-schema": schema.schema }, el("summary", {}, schema.schema),
        schema.objects.map((o) => node(o.name, o.qualified, el("span", { class: "badge user" }, `user ${o.kind}`), o.columns,
          { "data-object": o.qualified, "data-generated": "false", "data-kind": o.kind }))))
        : el("p", { class: "muted small" }, "no views or tables of your own yet"));
    $("schema-tree").replaceChildren(lake, warehouse);
    $("tree-error").hidden = !tree.warehouse_error;
    $("tree-error").textContent = tree.warehouse_error || "";
    $("schema-tree").dataset.ready = "true";
    const first = tree.layers.length ? tree.layers[0].datasets[0] : null;
    if (!editor.value.trim() && first) editor.value = `SELECT * FROM ${first.qualified} LIMIT 1000`;
  }

  // ---------------------------------------------------------------- mode, running
  function showMode() {
    const writing = Boolean(writeBox && writeBox.checked);
    const badge = $("sql-mode");
    badge.dataset.mode = writing ? "write" : "read-only";
    badge.className = "badge " + (writing ? "mode-write" : "mode-read-only");
    badge.textContent = writing ? "writes to the warehouse" : "read-only";
  }
  if (writeBox) writeBox.addEventListener("change", showMode);
  showMode();

  function showError(message) {
    $("sql-error").textContent = message;
    $("sql-error").hidden = false;
  }

  const runTurn = latest();
  async function run() {
    const query = editor.value;
    if (!query.trim()) return;
    const write = Boolean(writeBox && writeBox.checked);
    $("sql-error").hidden = true;
    $("sql-info").textContent = "running…";
    const mine = runTurn();
    try {
      const result = await api("POST", "/sql/run", { query, write });
      if (!mine()) return;
      state.result = result;
      state.query = query;
      state.page = 0;
      $("sql-info").textContent = `${result.row_count.toLocaleString()} row(s) in ${result.elapsed_seconds.toFixed(3)} s` +
        (result.mode === "write" ? ` · ran on the warehouse: ${(result.changes || []).join("; ") || `${result.statements} statement(s)`}` : "");
      $("sql-cap").hidden = !result.truncated;
      $("sql-cap").textContent = result.truncated
        ? `Only the first ${result.max_rows.toLocaleString()} rows are kept (the row cap); the query returns more. Narrow it (a filter, an aggregate, a LIMIT).`
        : "";
      $("sql-results").hidden = false;
      $("sql-results").dataset.query = query;
      drawPage();
      chartControls();
      if (result.mode === "write") loadTree();
    } catch (error) {
      if (!mine()) return;
      $("sql-info").textContent = "";
      $("sql-results").hidden = true;
      showError(error.message);
    }
  }
  $("sql-form").addEventListener("submit", (event) => { event.preventDefault(); run(); });
  editor.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); run(); }
  });

  // --------------------------------------------------------------------- results
  const NUMERIC = /^(Int|UInt|Float|Decimal)/;
  const isNumeric = (column) => NUMERIC.test(column.type);
  const isUtc = (column) => /^Datetime\(.*time_zone='UTC'/.test(column.type);
  function cell(value, column) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") {
      if (Number.isInteger(value)) return String(value);
      return String(Number(value.toPrecision(10))); // no 0.30000000000000004
    }
    if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value)) {
      const shown = value.replace("T", " ");
      return isUtc(column) ? shown.replace(/(\+00:00|Z)$/, "") : shown;
    }
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }
  function drawPage() {
    const { columns, rows } = state.result;
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    state.page = Math.min(Math.max(state.page, 0), pages - 1);
    const start = state.page * PAGE_SIZE;
    const shown = rows.slice(start, start + PAGE_SIZE);
    const table = $("sql-table");
    table.replaceChildren(
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { "data-column": c.name, title: c.type, class: isNumeric(c) ? "num" : "" },
        c.name + (isUtc(c) ? " (UTC)" : ""))))),
      el("tbody", {}, shown.map((row) => el("tr", {}, columns.map((c) => el("td", { class: isNumeric(c) ? "num" : "" }, cell(row[c.name], c)))))),
    );
    const total = rows.length.toLocaleString() + (state.result.truncated ? "+" : "");
    $("page-info").textContent = rows.length
      ? `rows ${(start + 1).toLocaleString()}–${(start + shown.length).toLocaleString()} of ${total} · page ${state.page + 1} of ${pages}`
      : "no rows";
    $("page-info").dataset.page = String(state.page + 1);
    $("page-prev").disabled = state.page === 0;
    $("page-next").disabled = state.page >= pages - 1;
  }
  $("page-prev").addEventListener("click", () => { state.page -= 1; drawPage(); });
  $("page-next").addEventListener("click", () => { state.page += 1; drawPage(); });

  // ------------------------------------------------------------------------ chart
  function chartControls() {
    const { columns } = state.result;
    const temporal = columns.find((c) => /^(Datetime|Date|Time)/.test(c.type));
    const x = temporal || columns[0];
    $("chart-x").replaceChildren(...columns.map((c) => el("option", { value: c.name }, c.name)));
    if (x) $("chart-x").value = x.name;
    const numeric = columns.filter(isNumeric);
    const firstY = numeric.find((c) => !x || c.name !== x.name);
    $("chart-y").replaceChildren(...numeric.map((c) => el("label", { class: "chip" },
      el("input", { type: "checkbox", value: c.name, checked: firstY && c.name === firstY.name }), " " + c.name)));
    $("sql-chart").replaceChildren();
    $("sql-chart").dataset.drawn = "false";
  }
  function plotValue(value) {
    // Instants as their UTC wall-clock time (the connection's time zone); Plotly reads no offsets.
    return typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value) ? value.replace("T", " ").replace(/(Z|[+-]\d{2}:\d{2})$/, "") : value;
  }
  $("chart-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!state.result) return;
    const x = $("chart-x").value;
    const ys = [...$("chart-y").querySelectorAll("input:checked")].map((input) => input.value);
    if (!ys.length) { toast("choose at least one y column (a numeric one)", true); return; }
    const kind = $("chart-kind").value;
    const xs = state.result.rows.map((row) => plotValue(row[x]));
    const traces = ys.map((y) => ({
      type: kind === "bar" ? "bar" : "scatter", mode: kind === "bar" ? undefined : "lines", name: y,
      x: xs, y: state.result.rows.map((row) => row[y]),
    }));
    Plotly.newPlot("sql-chart", traces, {
      margin: { t: 20, r: 20, b: 50, l: 60 }, xaxis: { title: x, automargin: true },
      showlegend: ys.length > 1, barmode: "group",
    }, { responsive: true, displaylogo: false });
    $("sql-chart").dataset.drawn = "true";
    $("sql-chart").dataset.kind = kind;
  });

  // -------------------------------------------------------------------- downloads
  async function download(format) {
    if (!state.query) return;
    $("sql-error").hidden = true;
    const response = await fetch("/api/v1/sql/download", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Ticklake-CSRF": cookie("ticklake_csrf") },
      body: JSON.stringify({ query: state.query, format }),
    });
    if (!response.ok) {
      let message = `${response.status}`;
      try { const data = await response.json(); if (data && data.error) message = data.error.message; } catch (_) { /* not JSON */ }
      showError(message);
      return;
    }
    const disposition = response.headers.get("content-disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: match ? match[1] : `query.${format}`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
  $("download-csv").addEventListener("click", () => download("csv").catch((e) => showError(e.message)));
  $("download-parquet").addEventListener("click", () => download("parquet").catch((e) => showError(e.message)));

  loadTree();
});
