// Strategy builder: forms and a visual rule builder that produce the same spec JSON a
// user writes by hand (validated by the server's StrategySpec), save as YAML, run.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const { api, el, toast, latest } = TL;
  const $ = (id) => document.getElementById(id);
  const root = $("builder");
  const datasets = JSON.parse(root.dataset.datasets || "[]");
  const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  const OPS = [">", ">=", "<", "<=", "==", "!=", "crosses_above", "crosses_below"];
  const SELECTORS = { atm: null, otm: "steps", itm: "steps", delta: "target", premium: "target" };
  const THRESHOLDS = [
    ["leg_stop_loss", "leg stop-loss"], ["leg_target", "leg target"],
    ["stop_loss", "position stop-loss"], ["target", "position target"], ["trailing_stop", "trailing stop"],
  ];
  // A sweep binds a field to an axis with a placeholder, `"${distance}"`: such a field keeps
  // the placeholder (never Number("${distance}") = NaN, sent as null) and says which axis.
  const PLACEHOLDER = /^\$\{([A-Za-z_]\w*)\}$/;
  const axisOf = (value) => { const match = PLACEHOLDER.exec(String(value ?? "").trim()); return match ? match[1] : null; };
  const numberOrAxis = (value) => (axisOf(value) ? String(value).trim() : Number(value));
  const axisBadge = (value) => (axisOf(value) ? el("span", { class: "chip on axis-bound", "data-axis": axisOf(value), title: `bound to sweep axis ${axisOf(value)}: each variant puts one of its values here` }, `⇄ ${axisOf(value)}`) : "");
  // A number input that may hold a placeholder: a text box then, showing it, with its axis.
  function setNumber(id, value) {
    const input = $(id);
    const bound = axisOf(value);
    input.type = bound ? "text" : "number";
    input.dataset.axis = bound || "";
    input.title = bound ? `bound to sweep axis ${bound}` : "";
    input.value = value ?? "";
  }
  let metrics = [];
  try { metrics = (await api("GET", "/metrics?kind=series")).metrics; } catch (error) { toast(error.message, true); }
  const metricByName = Object.fromEntries(metrics.map((m) => [m.name, m]));

  // ------------------------------------------------------------ weekdays, windows
  const weekdays = new Set(["mon", "tue", "wed", "thu", "fri"]);
  function renderWeekdays() {
    $("weekday-chips").replaceChildren(...WEEKDAYS.map((day) => el("button", {
      type: "button", class: "chip" + (weekdays.has(day) ? " on" : ""), "data-weekday": day,
      onclick: () => { weekdays.has(day) ? weekdays.delete(day) : weekdays.add(day); renderWeekdays(); changed(); },
    }, day)));
  }
  let windows = ["09:20-09:25"];
  function windowProblem(text) {
    const match = /^(\d{2}):(\d{2})-(\d{2}):(\d{2})$/.exec(text.trim());
    if (!match) return `"${text}" must look like HH:MM-HH:MM`;
    const [h1, m1, h2, m2] = match.slice(1).map(Number);
    if (h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59) return `"${text}" is not a valid time range`;
    if (h2 * 60 + m2 <= h1 * 60 + m1) return `"${text}" ends before it starts`;
    if (windows.includes(text.trim())) return `"${text}" is already there`;
    return null;
  }
  function renderWindows() {
    $("window-chips").replaceChildren(...windows.map((w) => el("span", { class: "chip on", "data-window": w }, w,
      el("button", { type: "button", class: "remove", title: "remove", onclick: () => { windows = windows.filter((x) => x !== w); renderWindows(); changed(); } }, "×"))));
  }
  $("window-add").addEventListener("click", () => {
    const text = $("window-input").value.trim();
    const problem = windowProblem(text);
    $("window-error").textContent = problem || "";
    $("window-input").classList.toggle("invalid", Boolean(problem));
    if (problem) return;
    windows.push(text);
    $("window-input").value = "";
    renderWindows();
    changed();
  });
  $("window-input").addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); $("window-add").click(); } });

  // ------------------------------------------------------------------- legs
  let legs = [];
  function renderLegs() {
    const body = $("legs").querySelector("tbody");
    body.replaceChildren(...legs.map((leg, index) => {
      const set = (key) => (event) => {
        const raw = event.target.value;
        leg[key] = event.target.dataset.numeric ? (axisOf(raw) ? raw.trim() : Number(raw)) : raw;
        if (key === "kind" || key === "opt_type") renderLegs();
        changed();
      };
      const param = SELECTORS[leg.kind];
      return el("tr", { "data-leg": index },
        el("td", {}, el("input", { value: leg.name, size: 6, oninput: set("name"), "data-field": "name" })),
        el("td", {}, select(["CE", "PE", ["INSTRUMENT", leg.instrument && leg.instrument !== "underlying" ? "instrument" : "underlying"]],
          leg.opt_type, set("opt_type"), { "data-field": "type", title: "CE/PE option, or a plain instrument (the underlying dataset, or the instrument of a loaded spec)" })),
        el("td", {}, select(["sell", "buy"], leg.side, set("side"))),
        el("td", {}, el("input", { type: axisOf(leg.lots) ? "text" : "number", min: 1, value: leg.lots, oninput: set("lots"), class: "short", "data-numeric": "lots", "data-field": "lots" }), axisBadge(leg.lots)),
        el("td", {}, leg.opt_type === "INSTRUMENT" ? "—" : select(Object.keys(SELECTORS), leg.kind, set("kind"))),
        el("td", {}, param && leg.opt_type !== "INSTRUMENT" ? [
          // Text, not type=number: it may hold a sweep placeholder such as ${distance}.
          el("input", { type: "text", inputmode: "decimal", value: leg.param ?? (param === "steps" ? 1 : 0.3), oninput: set("param"), class: "short", title: `${param}: a number or a sweep axis as \${name}`, "data-numeric": "param", "data-field": "param" }),
          axisBadge(leg.param)] : ""),
        el("td", {}, el("button", { type: "button", class: "remove", onclick: () => { legs.splice(index, 1); renderLegs(); changed(); } }, "×")));
    }));
    document.querySelectorAll(".rule-builder").forEach((node) => node._render && node._render());
  }
  function select(options, value, onchange, attrs = {}) {
    const node = el("select", { onchange, ...attrs }, options.map((o) => {
      const [v, label] = Array.isArray(o) ? o : [o, o];
      return el("option", { value: v, selected: v === value }, label);
    }));
    node.value = value;
    return node;
  }
  $("leg-add").addEventListener("click", () => { legs.push({ name: `leg${legs.length + 1}`, opt_type: "CE", side: "sell", lots: 1, kind: "atm" }); renderLegs(); changed(); });

  // ----------------------------------------------------------- rule builder
  const group = (type = "all") => ({ group: type, negate: false, items: [] });
  const leaf = () => ({ left: metricOperand(), op: ">", right: { number: "0" } });
  function metricOperand(name) {
    const chosen = name || (metrics[0] && metrics[0].name) || "last_price";
    return { metric: chosen, args: defaults(chosen), of: "underlying" };
  }
  function defaults(name) {
    const m = metricByName[name];
    const props = (m && m.parameters && m.parameters.properties) || {};
    return Object.fromEntries(Object.entries(props).map(([k, p]) => [k, p.default]));
  }
  function sources() {
    return [["underlying", "underlying"], ...legs.map((l) => [`leg:${l.name}`, `leg ${l.name}`]), ["position", "position"]];
  }
  function operandEditor(operand, onchange, side) {
    const wrap = el("span", { class: "operand", "data-side": side });
    const isNumber = operand.number !== undefined;
    const kind = select([["metric", "metric"], ["number", "number"]], isNumber ? "number" : "metric", (event) => {
      if (event.target.value === "number") { for (const k of Object.keys(operand)) delete operand[k]; operand.number = "0"; }
      else { for (const k of Object.keys(operand)) delete operand[k]; Object.assign(operand, metricOperand()); }
      onchange(true);
    }, { "data-role": "kind" });
    wrap.append(kind);
    if (isNumber) {
      wrap.append(el("input", { value: operand.number, size: 8, "data-role": "number", placeholder: "number or ${axis}", oninput: (event) => { operand.number = event.target.value; onchange(false); } }));
      return wrap;
    }
    wrap.append(select(sources(), operand.of, (event) => {
      operand.of = event.target.value;
      if (operand.of === "position") { operand.metric = "pnl"; operand.args = {}; }
      else if (!metricByName[operand.metric]) Object.assign(operand, { metric: metricOperand().metric, args: defaults(metricOperand().metric) });
      onchange(true);
    }, { "data-role": "of" }));
    const names = operand.of === "position" ? [["pnl", "position P&L (₹)"], ["drawdown", "position drawdown (₹)"]] : metrics.map((m) => [m.name, `${m.name} — ${m.title}`]);
    wrap.append(select(names, operand.metric, (event) => { operand.metric = event.target.value; operand.args = defaults(operand.metric); onchange(true); }, { "data-role": "metric" }));
    const m = metricByName[operand.metric];
    const props = (operand.of !== "position" && m && m.parameters && m.parameters.properties) || {};
    for (const [key, prop] of Object.entries(props)) {
      const value = operand.args[key] ?? prop.default;
      const label = el("label", { class: "param" }, key + " ");
      if (prop.enum) label.append(select(prop.enum, value, (event) => { operand.args[key] = event.target.value; onchange(false); }, { "data-param": key }));
      else {
        const numeric = prop.type === "integer" || prop.type === "number";
        label.append(el("input", { value: value ?? "", size: 5, "data-param": key, title: prop.description || "", oninput: (event) => {
          const raw = event.target.value;
          operand.args[key] = numeric && raw !== "" && !raw.startsWith("$") ? Number(raw) : raw;
          onchange(false);
        } }));
      }
      wrap.append(label);
    }
    return wrap;
  }
  function nodeEditor(node, parent, onchange) {
    if (node.group) {
      const box = el("div", { class: "rule-group" + (node.negate ? " negated" : ""), "data-group": node.group });
      const head = el("div", { class: "rule-head" },
        el("button", { type: "button", class: "toggle" + (node.negate ? " on" : ""), "data-role": "not", onclick: () => { node.negate = !node.negate; onchange(true); } }, "Not"),
        select([["all", "All of"], ["any", "Any of"]], node.group, (event) => { node.group = event.target.value; onchange(true); }, { "data-role": "group-type" }),
        el("button", { type: "button", "data-role": "add-condition", onclick: () => { node.items.push(leaf()); onchange(true); } }, "+ condition"),
        el("button", { type: "button", "data-role": "add-group", onclick: () => { node.items.push(group("any")); onchange(true); } }, "+ group"),
        parent ? el("button", { type: "button", class: "remove", onclick: () => { parent.items.splice(parent.items.indexOf(node), 1); onchange(true); } }, "×") : "");
      box.append(head, ...node.items.map((child) => nodeEditor(child, node, onchange)));
      return box;
    }
    return el("div", { class: "rule-leaf", "data-role": "leaf" },
      operandEditor(node.left, onchange, "left"),
      select(OPS, node.op, (event) => { node.op = event.target.value; onchange(false); }, { "data-role": "op" }),
      operandEditor(node.right, onchange, "right"),
      el("button", { type: "button", class: "remove", onclick: () => { parent.items.splice(parent.items.indexOf(node), 1); onchange(true); } }, "×"));
  }
  function operandJson(operand) {
    if (operand.number !== undefined) {
      const text = String(operand.number).trim();
      return /^\$\{[A-Za-z_]\w*\}$/.test(text) ? text : Number(text);
    }
    const out = { metric: operand.metric };
    const m = metricByName[operand.metric];
    const props = (m && m.parameters && m.parameters.properties) || {};
    const args = {};
    Object.keys(props).forEach((key, index) => {
      const value = operand.args[key];
      if (value === undefined || value === "") return;
      if (index === 0 || value !== props[key].default) args[key] = value;
    });
    if (Object.keys(args).length) out.args = args;
    if (operand.of !== "underlying") out.of = operand.of;
    return out;
  }
  function nodeJson(node) {
    if (node.group) {
      const items = node.items.map(nodeJson).filter((x) => x !== null);
      if (!items.length) return null;
      const body = items.length === 1 && !node.negate ? items[0] : { [node.group]: items };
      return node.negate ? { not: body } : body;
    }
    return { left: operandJson(node.left), op: node.op, right: operandJson(node.right) };
  }
  function treeFromJson(data) {
    if (data === null || data === undefined) return group();
    if (typeof data !== "object") throw new Error("text");
    if (data.all || data.any) {
      const type = data.all ? "all" : "any";
      return { group: type, negate: false, items: data[type].map((item) => { const t = treeFromJson(item); return t.group && !t.negate && t.items.length === 1 && !(item.all || item.any) ? t.items[0] : t; }) };
    }
    if (data.not) {
      const inner = treeFromJson(data.not);
      if (inner.group && !inner.negate) { inner.negate = true; return inner; }
      return { group: "all", negate: true, items: [inner] };
    }
    if (data.left !== undefined) {
      const operand = (o) => {
        if (typeof o === "number" || (typeof o === "string" && o.startsWith("${"))) return { number: String(o) };
        if (o && o.metric && !o.arith) return { metric: o.metric, args: { ...defaults(o.metric), ...(o.args || {}) }, of: o.of || "underlying" };
        throw new Error("text");
      };
      return { group: "all", negate: false, items: [{ left: operand(data.left), op: data.op, right: operand(data.right) }] };
    }
    throw new Error("text");
  }
  const rules = {};
  document.querySelectorAll(".rule-builder").forEach((node) => {
    const key = node.dataset.rule;
    rules[key] = { tree: group(), text: null };
    node._render = () => {
      const rule = rules[key];
      const mode = el("div", { class: "row small" },
        el("label", {}, el("input", { type: "checkbox", checked: rule.text !== null, "data-role": "text-mode", onchange: (event) => { rule.text = event.target.checked ? (JSON.stringify(nodeJson(rule.tree)) === "null" ? "" : JSON.stringify(nodeJson(rule.tree))) : null; node._render(); changed(); } }), " edit as text"));
      if (rule.text !== null) {
        node.replaceChildren(mode, el("textarea", { rows: 2, "data-role": "rule-text", placeholder: "e.g. volume_1m > volume_2m and ema(1) > ema(5)", oninput: (event) => { rule.text = event.target.value; changed(); } }, rule.text));
        return;
      }
      node.replaceChildren(mode, nodeEditor(rule.tree, null, (structural) => { if (structural) node._render(); changed(); }));
    };
  });
  function ruleJson(key) {
    const rule = rules[key];
    if (rule.text !== null) {
      const text = rule.text.trim();
      if (!text) return null;
      if (text.startsWith("{")) { try { return JSON.parse(text); } catch { return text; } }
      return text;
    }
    return nodeJson(rule.tree);
  }
  function loadRule(key, data) {
    try { rules[key] = { tree: treeFromJson(data), text: null }; }
    catch { rules[key] = { tree: group(), text: typeof data === "string" ? data : JSON.stringify(data) }; }
  }

  // -------------------------------------------------------------- thresholds
  const thresholdState = {};
  function renderThresholds() {
    $("thresholds").replaceChildren(...THRESHOLDS.map(([key, label]) => {
      const current = thresholdState[key] || { kind: "off", value: "" };
      return el("label", {}, label + " ",
        select([["off", "off"], ["points", "points"], ["pct", "% of premium"], ["money", "₹"]], current.kind, (event) => { thresholdState[key] = { ...current, kind: event.target.value }; renderThresholds(); changed(); }),
        current.kind === "off" ? "" : el("input", { type: "text", inputmode: "decimal", class: "short", value: current.value, "data-threshold": key, title: "a number or a sweep axis as ${name}", oninput: (event) => { thresholdState[key] = { ...current, value: event.target.value }; changed(); } }),
        current.kind === "off" ? "" : axisBadge(current.value));
    }));
  }

  // ------------------------------------------------------------------- sweep
  let axes = [];
  function renderAxes() {
    $("sweep-axes").querySelector("tbody").replaceChildren(...axes.map((axis, index) => el("tr", {},
      el("td", {}, el("input", { value: axis.name, "data-role": "axis-name", oninput: (event) => { axis.name = event.target.value; changed(); } })),
      el("td", {}, el("input", { value: axis.values, size: 30, "data-role": "axis-values", oninput: (event) => { axis.values = event.target.value; changed(); } })),
      el("td", {}, el("button", { type: "button", class: "remove", onclick: () => { axes.splice(index, 1); renderAxes(); changed(); } }, "×")))));
  }
  $("sweep-add").addEventListener("click", () => { axes.push({ name: `axis${axes.length + 1}`, values: "1, 2" }); renderAxes(); changed(); });
  function axisValues(axis) {
    return axis.values.split(",").map((v) => v.trim()).filter(Boolean).map((v) => (isNaN(Number(v)) ? v : Number(v)));
  }
  function sweepSize() {
    const sizes = axes.filter((a) => a.name.trim()).map((a) => axisValues(a).length);
    const total = sizes.reduce((a, b) => a * b, 1);
    $("sweep-size").textContent = sizes.length
      ? `grid: ${sizes.join(" × ")} = ${total} variant${total === 1 ? "" : "s"}${$("sweep-constraints").value.trim() ? " before constraints" : ""}`
      : "grid: 1 variant";
    $("run-sweep").hidden = sizes.length === 0;
    return total;
  }
  $("sweep-constraints").addEventListener("input", () => changed());

  // ---------------------------------------------------------------- the spec
  const num = (id) => numberOrAxis($(id).value);
  const optionalNumber = (id) => ($(id).value === "" ? undefined : numberOrAxis($(id).value));
  function buildSpec() {
    const spec = {
      name: $("f-name").value.trim(),
      description: $("f-description").value,
      universe: {
        underlying: $("f-underlying").value.trim(),
        options_dataset: $("f-options-dataset").value,
        expiry: $("f-expiry").value,
      },
      time: {
        start: $("f-start").value, end: $("f-end").value,
        weekdays: WEEKDAYS.filter((d) => weekdays.has(d)),
        entry_windows: windows.slice(),
        exit_time: $("f-exit").value.slice(0, 5),
        session_start: $("f-session-start").value.slice(0, 5),
        session_end: $("f-session-end").value.slice(0, 5),
      },
      legs: legs.map((leg) => {
        if (leg.opt_type === "INSTRUMENT") return { name: leg.name, instrument: leg.instrument || "underlying", side: leg.side, lots: numberOrAxis(leg.lots) };
        const selector = { kind: leg.kind };
        if (SELECTORS[leg.kind]) selector[SELECTORS[leg.kind]] = numberOrAxis(leg.param ?? (SELECTORS[leg.kind] === "steps" ? 1 : 0.3));
        return { name: leg.name, opt_type: leg.opt_type, side: leg.side, lots: numberOrAxis(leg.lots), selector };
      }),
      max_entries_per_day: num("f-max-entries"),
      fills: {
        mode: $("f-fill-mode").value, base_ticks: num("f-base-ticks"), spread_alpha: num("f-spread-alpha"),
        volatility_beta: num("f-volatility-beta"), as_of_tolerance_seconds: num("f-asof"), max_quote_age_seconds: num("f-max-age"),
      },
      costs: { table: $("f-cost-table").value.trim(), enabled: $("f-costs-enabled").checked },
      sampling: { first_n_trades: num("f-samples") },
    };
    if ($("f-underlying-dataset").value) spec.universe.underlying_dataset = $("f-underlying-dataset").value;
    const perOrder = optionalNumber("f-per-order");
    const perLot = optionalNumber("f-per-lot");
    if (perOrder !== undefined) spec.costs.per_order = perOrder;
    if (perLot !== undefined) spec.costs.per_lot = perLot;
    const rebalance = $("f-rebalance").value;
    if (rebalance === "every") spec.rebalance = { kind: "every", minutes: num("f-rebalance-minutes") };
    if (rebalance === "underlying_move") spec.rebalance = { kind: "underlying_move", points: num("f-rebalance-points") };
    const entry = ruleJson("entry");
    if (entry !== null) spec.entry = { when: entry };
    const exits = {};
    for (const [key] of THRESHOLDS) {
      const t = thresholdState[key];
      if (t && t.kind !== "off" && t.value !== "") exits[key] = { [t.kind]: numberOrAxis(t.value) };
    }
    const exitRule = ruleJson("exit");
    if (exitRule !== null) exits.when = exitRule;
    if (Object.keys(exits).length) spec.exits = exits;
    const day = ruleJson("day");
    if (day !== null) spec.day_filter = day;
    const named = axes.filter((a) => a.name.trim());
    if (named.length) {
      spec.sweep = Object.fromEntries(named.map((a) => [a.name.trim(), axisValues(a)]));
      const constraints = $("sweep-constraints").value.split(/[;\n]/).map((c) => c.trim()).filter(Boolean);
      if (constraints.length) spec.constraints = constraints;
    }
    return spec;
  }
  function loadSpec(spec) {
    const u = spec.universe || {}, t = spec.time || {}, f = spec.fills || {}, c = spec.costs || {};
    $("f-name").value = spec.name || "";
    $("f-description").value = (spec.description || "").trim();
    $("f-underlying").value = u.underlying || "";
    if (u.options_dataset) $("f-options-dataset").value = u.options_dataset;
    $("f-underlying-dataset").value = u.underlying_dataset || "";
    $("f-expiry").value = u.expiry || "nearest";
    if (t.start) $("f-start").value = t.start;
    if (t.end) $("f-end").value = t.end;
    $("f-exit").value = t.exit_time || "15:20";
    $("f-session-start").value = t.session_start || "09:15";
    $("f-session-end").value = t.session_end || "15:30";
    weekdays.clear(); (t.weekdays || ["mon", "tue", "wed", "thu", "fri"]).forEach((d) => weekdays.add(d));
    windows = (t.entry_windows || ["09:20-09:25"]).slice();
    legs = (spec.legs || []).map((leg) => {
      const s = leg.selector || { kind: "atm" };
      if (leg.instrument) return { name: leg.name, opt_type: "INSTRUMENT", instrument: leg.instrument, side: leg.side, lots: leg.lots || 1, kind: "atm" };
      return { name: leg.name, opt_type: leg.opt_type, side: leg.side, lots: leg.lots || 1, kind: s.kind, param: s.steps ?? s.target };
    });
    setNumber("f-max-entries", spec.max_entries_per_day || 1);
    const r = spec.rebalance || { kind: "none" };
    $("f-rebalance").value = r.kind;
    if (r.minutes) setNumber("f-rebalance-minutes", r.minutes);
    if (r.points) setNumber("f-rebalance-points", r.points);
    $("f-fill-mode").value = f.mode || "cross";
    setNumber("f-base-ticks", f.base_ticks ?? 0);
    setNumber("f-spread-alpha", f.spread_alpha ?? 0);
    setNumber("f-volatility-beta", f.volatility_beta ?? 0);
    setNumber("f-asof", f.as_of_tolerance_seconds ?? 5);
    setNumber("f-max-age", f.max_quote_age_seconds ?? 5);
    $("f-cost-table").value = c.table || "nse_fo";
    setNumber("f-per-order", c.per_order ?? "");
    setNumber("f-per-lot", c.per_lot ?? "");
    $("f-costs-enabled").checked = c.enabled !== false;
    setNumber("f-samples", (spec.sampling || {}).first_n_trades ?? 100);
    const exits = spec.exits || {};
    for (const [key] of THRESHOLDS) {
      const t2 = exits[key];
      thresholdState[key] = t2 ? Object.entries(t2).filter(([, v]) => v !== null).map(([k, v]) => ({ kind: k, value: v }))[0] || { kind: "off", value: "" } : { kind: "off", value: "" };
    }
    loadRule("entry", (spec.entry || {}).when);
    loadRule("exit", exits.when);
    loadRule("day", spec.day_filter);
    axes = Object.entries(spec.sweep || {}).map(([name, values]) => ({ name, values: values.join(", ") }));
    $("sweep-constraints").value = (spec.constraints || []).join("; ");
    renderAll();
  }
  function renderAll() {
    renderWeekdays(); renderWindows(); renderLegs(); renderThresholds(); renderAxes();
    document.querySelectorAll(".rule-builder").forEach((node) => node._render());
    changed();
  }

  // ----------------------------------------------------------- live preview
  let validateTimer = null;
  function changed() {
    const spec = buildSpec();
    $("spec-json").textContent = JSON.stringify(spec, null, 2);
    sweepSize();
    clearTimeout(validateTimer);
    validateTimer = setTimeout(() => validate(false), 400);
  }
  function message(text, kind) {
    const node = $("builder-message");
    node.textContent = text;
    node.className = "message " + (kind || "");
  }
  function withoutSweep(spec) {
    const copy = { ...spec };
    delete copy.sweep; delete copy.constraints;
    return copy;
  }
  // Each edit (400 ms apart) validates again: only the answer for the newest spec is shown.
  const validateTurn = latest();
  async function validate(loud) {
    const spec = buildSpec();
    const mine = validateTurn();
    try {
      // A spec with sweep axes is validated as the sweep (its placeholders need the axes).
      const result = await api("POST", "/strategies/validate", { spec: spec.sweep ? spec : withoutSweep(spec) });
      if (!mine()) return false;
      const lines = Object.entries(result.conditions).filter(([, v]) => v).map(([k, v]) => `${k}: ${v}`);
      $("conditions-text").textContent = lines.join("\n") || "(no conditions)";
      const grid = result.sweep ? ` · sweep of ${result.sweep.grid_size} variant(s), first variant's` : "";
      message(`valid · ${result.days_planned} trading day(s) planned${grid} · spec hash ${result.spec_hash}`, "ok");
      return true;
    } catch (error) {
      if (!mine()) return false;
      message(error.message, "error");
      if (loud) toast(error.message, true);
      return false;
    }
  }
  $("validate").addEventListener("click", () => validate(true));
  document.querySelectorAll("#builder fieldset input, #builder fieldset select").forEach((input) => {
    input.addEventListener("input", changed);
    input.addEventListener("change", changed);
  });

  $("run").addEventListener("click", async () => {
    $("run").disabled = true;
    try {
      const job = await api("POST", "/jobs/backtest", { spec: withoutSweep(buildSpec()) });
      location.href = `/runs/${encodeURIComponent(job.run_id)}?job=${encodeURIComponent(job.job_id)}`;
    } catch (error) {
      message(error.message, "error");
      toast(error.message, true);
      $("run").disabled = false;
    }
  });
  $("run-sweep").addEventListener("click", async () => {
    $("run-sweep").disabled = true;
    try {
      const job = await api("POST", "/jobs/sweep", { spec: buildSpec() });
      location.href = `/runs/${encodeURIComponent(job.run_id)}?job=${encodeURIComponent(job.job_id)}`;
    } catch (error) { message(error.message, "error"); toast(error.message, true); $("run-sweep").disabled = false; }
  });
  $("save-yaml").addEventListener("click", async () => {
    try {
      const text = await api("POST", "/strategies/yaml", { spec: withoutSweep(buildSpec()) });
      const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "application/x-yaml" })), download: `${buildSpec().name || "strategy"}.yml` });
      document.body.append(link); link.click(); link.remove();
    } catch (error) { message(error.message, "error"); toast(error.message, true); }
  });
  // A file opened, then a template chosen (or the other way round): the last one asked fills the form.
  const specTurn = latest();
  $("yaml-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    const mine = specTurn();
    try {
      const parsed = await api("POST", "/strategies/parse-yaml", { text: await file.text() });
      if (mine()) loadSpec(parsed.spec);
    } catch (error) { if (mine()) { message(error.message, "error"); toast(error.message, true); } }
  });
  async function loadTemplate(name) {
    const mine = specTurn();
    try {
      const spec = await api("GET", `/strategies/templates/${encodeURIComponent(name)}`);
      if (!mine()) return;
      loadSpec(spec);
      setDatesFromData(true);
    } catch (error) { if (mine()) toast(error.message, true); }
  }
  $("template-select").addEventListener("change", (event) => {
    if (event.target.value) loadTemplate(event.target.value);
  });

  // Default dates: the options dataset's days, so a fresh strategy runs on the data there is.
  function setDatesFromData(onlyOutside) {
    const chosen = datasets.find((d) => d.dataset === $("f-options-dataset").value || d.name === $("f-options-dataset").value);
    if (!chosen || !chosen.first_day) return;
    const start = $("f-start").value, end = $("f-end").value;
    const outside = !start || !end || end < chosen.first_day || start > chosen.last_day;
    if (!onlyOutside || outside) { $("f-start").value = chosen.first_day; $("f-end").value = chosen.last_day; }
  }

  legs = [{ name: "ce", opt_type: "CE", side: "sell", lots: 1, kind: "atm" }, { name: "pe", opt_type: "PE", side: "sell", lots: 1, kind: "atm" }];
  if ($("f-underlying-dataset").options.length > 1) $("f-underlying-dataset").selectedIndex = 1;
  setDatesFromData(false);
  renderAll();
  if (root.dataset.template) {
    // ?template=NAME: the form is ready once the template has filled it, not before.
    $("template-select").value = root.dataset.template;
    await loadTemplate(root.dataset.template);
  }
  root.dataset.ready = "true"; // every control is wired and filled (tests wait for this)
});
