// Analytics page: filter the metric catalogue; run a pipeline as a job with live progress.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const $ = (id) => document.getElementById(id);
  $("metric-filter").addEventListener("input", (event) => {
    const text = event.target.value.toLowerCase();
    document.querySelectorAll("details.metric").forEach((node) => { node.hidden = !node.dataset.name.includes(text); });
  });
  // Two examples clicked quickly: the text of the last one clicked ends in the box.
  const exampleTurn = TL.latest();
  document.querySelectorAll("[data-example]").forEach((link) => link.addEventListener("click", async (event) => {
    event.preventDefault();
    const mine = exampleTurn();
    try {
      const response = await fetch(`/api/v1/pipelines/examples/${encodeURIComponent(link.dataset.example)}`);
      const text = await response.text();
      if (!mine()) return;
      if (!response.ok) throw new Error(`${response.status}`);
      $("pipeline-yaml").value = text;
    } catch (error) { if (mine()) TL.toast(error.message, true); }
  }));
  let following = null; // the job whose progress the status line shows (the last one started)
  $("pipeline-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { pipeline_yaml: $("pipeline-yaml").value };
    if ($("pipeline-start").value) body.start = $("pipeline-start").value;
    if ($("pipeline-end").value) body.end = $("pipeline-end").value;
    try {
      const job = await TL.api("POST", "/jobs/pipeline", body);
      $("pipeline-status").textContent = `running (job ${job.job_id})…`;
      if (following) following.close();
      const source = new EventSource(`/api/v1/jobs/${job.job_id}/events`);
      following = source;
      const update = (message) => {
        const state = JSON.parse(message.data);
        const p = state.progress || {};
        if (p.total) $("pipeline-bar").style.width = `${(100 * p.done) / p.total}%`;
        if (state.status === "done") $("pipeline-status").textContent = `done: ${JSON.stringify(state.result)}`;
        else if (state.status !== "running" && state.status !== "queued") $("pipeline-status").textContent = `${state.status}: ${state.error ? state.error.message : ""}`;
        else $("pipeline-status").textContent = `running: batch ${p.done || 0} of ${p.total || "?"}`;
      };
      source.addEventListener("progress", update);
      source.addEventListener("end", (message) => { update(message); source.close(); });
    } catch (error) { $("pipeline-status").textContent = error.message; TL.toast(error.message, true); }
  });
});
