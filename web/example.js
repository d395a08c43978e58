// The client module used directly: every event it emits is shown, the last one says done.
import { startBatch } from "./upload-client.js";

const base = location.href.replace(/\/ui\/[^/]*$/, "");
const config = await (await fetch("config.json")).json();
const log = document.getElementById("log");
const state = document.getElementById("state");

document.getElementById("files").addEventListener("change", (event) => {
  const batch = startBatch(event.target.files, {
    baseUrl: base,
    statusUrl: config.statusUrl || base,
    token: document.getElementById("token").value,
    concurrency: 4,
  });
  for (const name of ["batch-created", "file-uploaded", "file-failed", "uploads-finished", "done", "error"]) {
    batch.on(name, (detail) => {
      const shown = name === "done" ? { ...detail, state: undefined } : detail;
      log.textContent += `${name} ${JSON.stringify(shown)}\n`;
    });
  }
  batch.on("batch-status", (s) => (state.textContent = `${s.status}: ${s.processed} of ${s.total} loaded`));
  batch.done.then((summary) => (state.dataset.done = summary.status));
});
