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

  function format(value, column) {
    if (value === null || value === undefined) return "";
    if (column && column.endsWith("_paise") && typeof value === "number") {
      return (value / 100).toLocaleString("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    }
    if (typeof value === "number" && !Number.isInteger(value)) return value.toPrecision(6).replace(/\.?0+$/, "");
    if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value)) return value.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z");
    return String(value);
  }

  // Fill <table> with columns [{name}] and rows [{...}]; opts.onHeader(name), opts.onCell(name, row).
  function fillTable(table, columns, rows, opts = {}) {
    table.replaceChildren();
    const head = el("tr", {}, columns.map((c) => {
      const th = el("th", { "data-column": c.name, title: c.type || "" }, c.label || c.name);
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
        const td = el("td", { class: typeof value === "number" ? "num" : "" }, format(value, c.name));
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

  return { api, el, fillTable, format, toast, cookie, latest };
})();
