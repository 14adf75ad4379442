// Compare page: statistics side by side and the spec differences of two runs.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const root = document.getElementById("compare");
  const { a, b } = root.dataset;
  if (!a || !b) return;
  try {
    const result = await TL.api("GET", `/runs/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    // Money as rupees (the column headers say ₹); every other kind as the report prints it
    // (the server's format_statistic: ratios to 3 decimals, rates as percent).
    const money = { paise: 1, rupees: 100 };
    const show = (value, kind, text) => (kind in money && typeof value === "number" ? TL.format(value * money[kind], "x_paise") : text ?? TL.format(value));
    const small = (sample, name) => (sample && sample.small_sample[name]) || null;
    TL.fillTable(document.getElementById("compare-stats"),
      [{ name: "label", label: "statistic (money in ₹)" }, { name: "a", label: result.run_a }, { name: "b", label: result.run_b }, { name: "difference", label: "B − A" }],
      result.statistics.map((s) => ({ name: s.name, label: s.label, a: show(s.a, s.kind, s.a_text), b: show(s.b, s.kind, s.b_text), difference: show(s.difference, s.kind, s.difference_text) })),
      {
        onCell: (column, row, td) => {
          const why = column === "a" ? small(result.sample_a, row.name) : column === "b" ? small(result.sample_b, row.name) : null;
          if (why) { td.classList.add("small-sample"); td.title = why; td.append(" ⚠"); }
          if (column !== "label") td.classList.add("num");
        },
      });
    TL.fillTable(document.getElementById("compare-spec"),
      [{ name: "path", label: "key" }, { name: "a", label: "A" }, { name: "b", label: "B" }],
      result.spec_differences.map((d) => ({ path: d.path, a: JSON.stringify(d.a), b: JSON.stringify(d.b) })));
  } catch (error) { TL.toast(error.message, true); }
});
