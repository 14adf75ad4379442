// Compare page: statistics side by side and the spec differences of two runs.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const root = document.getElementById("compare");
  const { a, b } = root.dataset;
  if (!a || !b) return;
  try {
    const result = await TL.api("GET", `/runs/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    const show = (value, kind) => (kind === "paise" && typeof value === "number" ? TL.format(value, "x_paise") : TL.format(value));
    TL.fillTable(document.getElementById("compare-stats"),
      [{ name: "label", label: "statistic" }, { name: "a", label: result.run_a }, { name: "b", label: result.run_b }, { name: "difference", label: "B − A" }],
      result.statistics.map((s) => ({ label: s.label, a: show(s.a, s.kind), b: show(s.b, s.kind), difference: show(s.difference, s.kind) })));
    TL.fillTable(document.getElementById("compare-spec"),
      [{ name: "path", label: "key" }, { name: "a", label: "A" }, { name: "b", label: "B" }],
      result.spec_differences.map((d) => ({ path: d.path, a: JSON.stringify(d.a), b: JSON.stringify(d.b) })));
  } catch (error) { TL.toast(error.message, true); }
});
