// Shared helpers of the dashboard pages: API calls (with the CSRF header), tables, tabs.
"use strict";

const TL = (() => {
  function cookie(name) {
    const match = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return match ? decodeURIComponent(match.slice(name.length + 1)) : "";
  }

  async function api(method, path, body) {
    const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") options.headers["X-Ticklake-CSRF"] = cookie("ticklake_csrf");
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch("/api/v1" + path, options);
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      let message = `${response.status}`;
      if (data && data.error) message = data.error.message;
      else if (data && data.detail) message = JSON.stringify(data.detail.map ? data.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`) : data.detail);
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Money is stored as integer paise (`*_paise` columns) and shown in rupees: one unit per
  // column, named in its header ("price (₹)"), and the run page's filters take rupees too.
  const isMoney = (name) => typeof name === "string" && name.endsWith("_paise");
  const columnLabel = (name) => (isMoney(name) ? `${name.slice(0, -6)} (₹)` : name);

  // "300", "-1,250.5", "₹300.25" (rupees) as integer paise text ("30000"); at most two
  // decimals — a paisa is the smallest unit. Throws an Error saying what to type otherwise.
  function rupeesToPaise(text) {
    const clean = String(text).replace(/[₹,\s]/g, "").replace("−", "-");
    const match = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(clean);
    if (!match) throw new Error(`"${text}" is not an amount in rupees: type e.g. 300 or 300.50 (at most two decimals)`);
    const paise = BigInt(match[2]) * 100n + BigInt((match[3] || "").padEnd(2, "0"));
    return (match[1] && paise !== 0n ? "-" : "") + paise.toString();
  }

  function format(value, column) {
    if (value === null || value === undefined) return "";
    if (column && column.endsWith("_paise") && typeof value === "number") {
      return (value / 100).toLocaleString("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    }
    if (typeof value === "number" && !Number.isInteger(value)) return value.toPrecision(6).replace(/\.?0+$/, "");
    if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value)) return value.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z");
    return String(value);
  }

  // "2024-01-10T09:20:00+05:30" (an instant in exchange time, as the API's `*_local` fields
  // give it) as the wall-clock time people read there: "2024-01-10 09:20:00".
  function localTime(text) {
    if (typeof text !== "string") return text === null || text === undefined ? "" : String(text);
    return text.replace("T", " ").replace(/\.\d+/, "").replace(/(Z|[+-]\d{2}:\d{2})$/, "");
  }

  // Columns of rows that came as plain objects: a `<name>_local` field beside `<name>` is
  // not a column of its own but the exchange-time view of that column.
  function columnsOf(rows) {
    if (!rows.length) return [];
    const keys = Object.keys(rows[0]);
    return keys.filter((k) => !(k.endsWith("_local") && keys.includes(k.slice(0, -6))))
      .map((name) => (keys.includes(name + "_local") ? { name, local: name + "_local" } : { name }));
  }

  // The offset ("+05:30") of `zone` at the local wall-clock time `naive` ("2024-01-10T09:20").
  function zoneOffset(zone, naive) {
    const minutesAt = (instant) => {
      const part = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" })
        .formatToParts(instant).find((p) => p.type === "timeZoneName").value; // "GMT+05:30" or "GMT"
      const match = /([+-])(\d{2}):?(\d{2})?/.exec(part);
      return match ? (match[1] === "-" ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3] || 0)) : 0;
    };
    const wall = new Date(naive + "Z").getTime();
    let minutes = minutesAt(new Date(wall));
    minutes = minutesAt(new Date(wall - minutes * 60000)); // the offset in force at that wall time
    const pad = (n) => String(n).padStart(2, "0");
    return (minutes < 0 ? "-" : "+") + pad(Math.floor(Math.abs(minutes) / 60)) + ":" + pad(Math.abs(minutes) % 60);
  }

  // A Plotly category x axis over exchange-time bar labels ("2024-01-10 09:15:00"): ticks at
  // round times of day labelled "09:15" (with seconds only when bars are shorter than a
  // minute), each day's first tick also carrying its date; at most about `maxTicks` ticks.
  // Over more than maxTicks / 2 days the ticks are days, labelled with their dates.
  function timeOfDayAxis(xs, maxTicks = 10) {
    const secondsOf = (x) => { const [h, m, s] = x.slice(11, 19).split(":").map(Number); return h * 3600 + m * 60 + (s || 0); };
    const steps = [1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 43200, 86400];
    const dayStarts = new Set(xs.map((x, i) => (i === 0 || x.slice(0, 10) !== xs[i - 1].slice(0, 10) ? i : -1)).filter((i) => i >= 0));
    const axis = { type: "category", tickmode: "array", tickangle: 0, automargin: true };
    if (dayStarts.size > maxTicks / 2) { // many days: a date axis, one tick per day or fewer
      const every = Math.ceil(dayStarts.size / maxTicks);
      const days = [...dayStarts].filter((_, k) => k % every === 0);
      return { ...axis, tickvals: days.map((i) => xs[i]), ticktext: days.map((i) => xs[i].slice(0, 10)) };
    }
    let ticks = [...dayStarts];
    for (const step of steps) {
      const chosen = xs.map((x, i) => (dayStarts.has(i) || secondsOf(x) % step === 0 ? i : -1)).filter((i) => i >= 0);
      ticks = chosen;
      if (chosen.length <= Math.max(maxTicks, dayStarts.size)) break;
    }
    // A day's last round time sits next to the next day's first bar: keep the dated one.
    const room = xs.length / Math.max(ticks.length, 1) / 2;
    ticks = ticks.filter((i) => dayStarts.has(i) || ![...dayStarts].some((d) => Math.abs(d - i) < room));
    const withSeconds = ticks.some((i) => secondsOf(xs[i]) % 60 !== 0);
    const clock = (x) => x.slice(11, withSeconds ? 19 : 16);
    return {
      ...axis,
      tickvals: ticks.map((i) => xs[i]),
      ticktext: ticks.map((i) => (dayStarts.has(i) ? `${clock(xs[i])}<br>${xs[i].slice(0, 10)}` : clock(xs[i]))),
    };
  }

  // Fill <table> with columns [{name, local?}] and rows [{...}]; opts.onHeader(name),
  // opts.onCell(name, row), opts.zone = the answer naming the zone (`timezone_abbreviation`,
  // `timezone_label`): a column with `local` shows that field, "ts (IST)" in its header.
  function fillTable(table, columns, rows, opts = {}) {
    table.replaceChildren();
    const zone = opts.zone && opts.zone.timezone_abbreviation ? opts.zone : null;
    const head = el("tr", {}, columns.map((c) => {
      const local = c.local && zone;
      const label = (c.label || columnLabel(c.name)) + (local ? ` (${zone.timezone_abbreviation})` : "");
      const title = local ? `exchange time, ${zone.timezone_label}` : isMoney(c.name) && !c.label ? `rupees (stored as integer paise in ${c.name})` : c.type || "";
      const th = el("th", { "data-column": c.name, title }, label);
      if (opts.sort === c.name) th.append(opts.descending ? " ▼" : " ▲");
      if (opts.onHeader) { th.classList.add("sortable"); th.addEventListener("click", () => opts.onHeader(c.name)); }
      return th;
    }));
    table.append(el("thead", {}, head));
    const body = el("tbody");
    for (const row of rows) {
      const tr = el("tr");
      for (const c of columns) {
        const value = row[c.name];
        const shown = c.local && zone ? localTime(row[c.local]) : format(value, c.name);
        const td = el("td", { class: typeof value === "number" ? "num" : "" }, shown);
        if (opts.onCell) opts.onCell(c.name, row, td);
        tr.append(td);
      }
      body.append(tr);
    }
    table.append(body);
  }

  function toast(message, isError) {
    const node = document.getElementById("toast");
    if (!node) return;
    node.textContent = message;
    node.className = "toast" + (isError ? " error" : "");
    node.hidden = false;
    clearTimeout(node._timer);
    node._timer = setTimeout(() => { node.hidden = true; }, 6000);
  }

  function setupTabs(root) {
    const buttons = root.querySelectorAll("[data-tab]");
    buttons.forEach((button) => button.addEventListener("click", () => {
      buttons.forEach((b) => b.classList.toggle("active", b === button));
      document.querySelectorAll("[data-panel]").forEach((panel) => {
        panel.hidden = panel.dataset.panel !== button.dataset.tab;
      });
      window.dispatchEvent(new CustomEvent("tl-tab", { detail: button.dataset.tab }));
    }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-tabs]").forEach(setupTabs);
  });

  // A panel can have several requests in flight (a day changed, then another; a time
  // stepped twice): answers come back in any order and only the newest may be drawn.
  // `const turn = latest();` then per request `const mine = turn(); ... if (!mine()) return;`
  function latest() {
    let newest = 0;
    return () => { const ticket = ++newest; return () => ticket === newest; };
  }

  return { api, el, fillTable, format, toast, cookie, latest, localTime, columnsOf, zoneOffset, timeOfDayAxis, isMoney, columnLabel, rupeesToPaise };
})();
