// Quality page: start a validation job and reload when its report is written.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("validate-form");
  const status = document.getElementById("validate-status");
  let following = null; // the last validation started: only its end moves the page
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { dataset: data.get("dataset") };
    if (data.get("start")) body.start = data.get("start");
    if (data.get("end")) body.end = data.get("end");
    const rules = String(data.get("rules") || "").split(",").map((r) => r.trim()).filter(Boolean);
    if (rules.length) body.rules = rules;
    try {
      const job = await TL.api("POST", "/jobs/validate", body);
      status.textContent = `validating (job ${job.job_id})…`;
      if (following) following.close();
      const source = new EventSource(`/api/v1/jobs/${job.job_id}/events`);
      following = source;
      source.addEventListener("end", (message) => {
        source.close();
        const state = JSON.parse(message.data);
        if (state.status === "done") location.href = `/quality?report=${encodeURIComponent(state.result.report_id)}`;
        else status.textContent = `${state.status}: ${state.error ? state.error.message : ""}`;
      });
    } catch (error) { TL.toast(error.message, true); status.textContent = ""; }
  });
});
