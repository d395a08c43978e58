// The admin page: choose files or a folder, check them, upload them in the order shown, watch
// them load, retry what failed, resume after a reload. Everything it sends goes through
// upload-client.js; the table is built a slice per frame and only changed cells are touched.
// Each loaded file shows its plausibility warnings and a sparkline of its weekly closes with the
// flagged weeks marked; a final batch can be undone after a confirmation.
import { forgetBatch, resumeBatch, savedBatches, startBatch } from "./upload-client.js";

const $ = (id) => document.getElementById(id);
const host = globalThis.INGEST_CONFIG || {}; // a host page may inject baseUrl, statusUrl, token
const limits = { maxFileBytes: Infinity, maxFiles: 1000, extensions: [".csv", ".txt", ".tsv"] };
const DATE = /date|time|datum|data|日期|时间|dtyyyymmdd/i;
const CLOSE = /close|last|price|settle|schluss|slot|laatste|zamkni|收盘/i;
let items = []; // what the table shows, in upload order
let batch = null;
let resumable = null;
const dirty = new Set();
let frame = 0;
const FINAL = new Set(["COMPLETED", "PARTIAL", "FAILED"]);
const SVG = "http://www.w3.org/2000/svg";
const SPARK = { width: 120, height: 28, pad: 3 };

const size = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.ceil(n / 1e3)} KB`);
const count = (n, one, many = `${one}s`) => `${n.toLocaleString("en")} ${n === 1 ? one : many}`;
const number = (v) => v.toLocaleString("en", { maximumSignificantDigits: 4 });
const clock = (s) => `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, "0")}`;

// ---------------------------------------------------------------------------- settings

async function setup() {
  const here = location.pathname.replace(/\/ui(\/[^/]*)?$/, "");
  $("base-url").value = host.baseUrl || location.origin + here;
  let fromServer = {};
  try {
    fromServer = await (await fetch("config.json")).json();
  } catch {
    /* served elsewhere: type the URLs in */
  }
  Object.assign(limits, fromServer.limits || {});
  $("status-url").value = host.statusUrl || fromServer.statusUrl || $("base-url").value;
  $("token").value = host.token || sessionStorage.getItem("ingest-token") || "";
  $("remember").checked = !!sessionStorage.getItem("ingest-token");
  const saved = (await savedBatches())[0];
  if (saved) offerResume(saved);
}

function options() {
  const token = $("token").value.trim();
  if ($("remember").checked) sessionStorage.setItem("ingest-token", token);
  else sessionStorage.removeItem("ingest-token");
  return { baseUrl: $("base-url").value, statusUrl: $("status-url").value, token };
}

// ------------------------------------------------------------------------------ choosing

async function add(files) {
  const known = new Set(items.map((i) => `${i.name}|${i.size}`));
  const fresh = files.filter((f) => !known.has(`${relative(f)}|${f.size}`));
  const checked = await Promise.all(fresh.map(check));
  for (const item of checked) {
    if (items.filter((i) => i.ok).length >= limits.maxFiles && item.ok) {
      Object.assign(item, { ok: false, reason: `over ${limits.maxFiles} files in one batch` });
    }
    items.push(item);
  }
  renderRows();
  const refused = items.filter((i) => !i.ok).length;
  $("checks").textContent = `${items.length - refused} file(s) ready` +
    (refused ? `, ${refused} not uploaded (see the Error column)` : "");
  $("start").disabled = !items.some((i) => i.ok) || !!batch;
}

const relative = (file) => file.webkitRelativePath || file.name;

async function check(file) {
  const item = { file, name: relative(file), size: file.size, ticker: "", ok: false, reason: "" };
  const ext = file.name.slice(file.name.lastIndexOf(".")).toLowerCase();
  if (!limits.extensions.includes(ext)) item.reason = `not a price file (${ext || "no extension"})`;
  else if (file.size === 0) item.reason = "empty file";
  else if (file.size > limits.maxFileBytes) item.reason = `larger than ${size(limits.maxFileBytes)}`;
  else item.reason = headerProblem(await head(file));
  item.ok = !item.reason;
  return item;
}

async function head(file) {
  const bytes = new Uint8Array(await file.slice(0, 8192).arrayBuffer());
  const utf16 = bytes[0] === 0xff && bytes[1] === 0xfe ? "utf-16le" : bytes[0] === 0xfe && bytes[1] === 0xff ? "utf-16be" : null;
  if (utf16) return new TextDecoder(utf16).decode(bytes);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes.slice(0, cutUtf8(bytes)));
  } catch {
    return new TextDecoder("gbk").decode(bytes) + "\n" + new TextDecoder("windows-1252").decode(bytes);
  }
}

function cutUtf8(bytes) {
  let end = bytes.length;
  while (end > 0 && end > bytes.length - 4 && (bytes[end - 1] & 0xc0) === 0x80) end--;
  return end > 0 && bytes[end - 1] >= 0xc0 ? end - 1 : bytes.length;
}

function headerProblem(text) {
  const lines = text.split(/\r?\n/).slice(0, 30).filter((l) => l.trim());
  if (!lines.length) return "no text in the first 8 KB";
  if (lines.some((line) => DATE.test(line) && CLOSE.test(line))) return "";
  return `no recognisable header (first line: "${lines[0].slice(0, 60)}")`;
}

async function dropped(event) {
  event.preventDefault();
  const entries = Array.from(event.dataTransfer.items || [])
    .map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  const files = entries.length ? (await Promise.all(entries.map(walk))).flat()
    : Array.from(event.dataTransfer.files);
  add(files);
}

async function walk(entry, path = "") {
  if (entry.isFile) {
    return [await new Promise((resolve, reject) => entry.file(resolve, reject))];
  }
  const reader = entry.createReader();
  const children = [];
  for (;;) {
    const batchOf = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batchOf.length) break;
    children.push(...batchOf);
  }
  return (await Promise.all(children.map((c) => walk(c, `${path}${entry.name}/`)))).flat();
}

// ------------------------------------------------------------------------------- the table

function renderRows() {
  const body = $("files").tBodies[0];
  let next = 0;
  const slice = () => {
    const part = document.createDocumentFragment();
    for (const end = Math.min(items.length, next + 200); next < end; next++) {
      const item = items[next];
      if (!item.row) part.append(makeRow(item));
    }
    body.append(part);
    if (next < items.length) requestAnimationFrame(slice);
    else renumber();
  };
  slice();
}

function makeRow(item) {
  const row = document.createElement("tr");
  const cells = {};
  for (const name of ["n", "name", "size", "ticker", "upload", "state", "tickers", "rows", "rejected", "error", "warnings", "series", "actions"]) {
    cells[name] = row.insertCell();
  }
  cells.name.textContent = item.name;
  cells.size.textContent = size(item.size);
  if (item.ok && !item.saved) {
    const input = Object.assign(document.createElement("input"), { type: "text", size: 8 });
    input.setAttribute("aria-label", `Ticker for ${item.name} (optional)`);
    input.addEventListener("input", () => (item.ticker = input.value));
    cells.ticker.append(input);
    item.tickerInput = input;
    cells.actions.append(button("Up", `Move ${item.name} up`, () => move(item, -1)),
      button("Down", `Move ${item.name} down`, () => move(item, 1)));
  } else {
    cells.ticker.textContent = item.ticker || "";
  }
  const bar = Object.assign(document.createElement("progress"), { max: 100, value: 0 });
  bar.setAttribute("aria-label", `Upload of ${item.name}`);
  const percent = document.createElement("span");
  cells.upload.append(bar, percent);
  Object.assign(item, { row, cells, bar, percent });
  row.dataset.name = item.name;
  cells.state.textContent = item.ok ? "ready" : "not uploaded";
  cells.error.textContent = item.reason || "";
  return row;
}

function button(text, label, action) {
  const b = Object.assign(document.createElement("button"), { type: "button", textContent: text });
  b.setAttribute("aria-label", label);
  b.addEventListener("click", action);
  return b;
}

function move(item, step) {
  const at = items.indexOf(item);
  const to = at + step;
  if (to < 0 || to >= items.length || batch) return;
  [items[at], items[to]] = [items[to], items[at]];
  const body = $("files").tBodies[0];
  if (step < 0) body.insertBefore(item.row, items[at].row);
  else body.insertBefore(items[at].row, item.row);
  renumber();
  item.row.querySelector(`button[aria-label="Move ${CSS.escape(item.name)} ${step < 0 ? "up" : "down"}"]`)?.focus();
}

function renumber() {
  items.forEach((item, i) => item.cells && (item.cells.n.textContent = String(i + 1)));
}

function touch(item) {
  dirty.add(item);
  frame ||= requestAnimationFrame(paint);
}

function paint() {
  frame = 0;
  for (const item of dirty) {
    const f = item.entry;
    if (!f) continue;
    const pct = f.size ? Math.floor((100 * (f.upload === "uploaded" ? f.size : f.loaded)) / f.size) : 100;
    if (item.bar.value !== pct) {
      item.bar.value = pct;
      item.percent.textContent = ` ${pct}%`;
    }
    setText(item.cells.state, stateOf(f));
    setText(item.cells.tickers, (f.tickers || []).join(" "));
    setText(item.cells.rows, f.rowsLoaded == null ? "" : f.rowsLoaded.toLocaleString("en"));
    setText(item.cells.rejected, f.rowsRejected == null ? "" : f.rowsRejected.toLocaleString("en"));
    setText(item.cells.error, f.processingError || f.error || "");
    item.row.dataset.state = stateOf(f);
    if (f.rejectsUrl && !item.rejects) {
      item.rejects = button("Rejects CSV", `Download the rejected rows of ${item.name}`,
        () => download(item.entry.rejectsUrl, csvName(item, "rejects")));
      item.cells.actions.append(item.rejects);
    }
    if (item.counted !== f.warningCounts || item.linked !== f.warningsUrl) paintWarnings(item, f);
    if (item.drawn !== f.series) paintSeries(item, f);
  }
  dirty.clear();
  paintTotals();
}

const setText = (cell, text) => cell.textContent !== text && (cell.textContent = text);

function stateOf(f) {
  if (f.upload === "failed") return "upload failed";
  if (f.upload === "missing") return "choose again";
  if (f.upload !== "uploaded") return f.upload;
  if (f.status === "COMPLETED" && batch?.lastStatus?.status === "REVERTED") return "REVERTED";
  return f.status;
}

const csvName = (item, kind) => item.name.replace(/^.*\//, "").replace(/\.[^.]*$/, "") + `.${kind}.csv`;
const codesOf = (f) => Object.entries(f.warningCounts || {});

// The count, the codes with their rows, and a link to the warnings CSV; rebuilt only when the
// file's counts or its link change.
function paintWarnings(item, f) {
  item.counted = f.warningCounts;
  item.linked = f.warningsUrl;
  const key = `${f.warnings || 0}|${JSON.stringify(f.warningCounts || {})}|${f.warningsUrl || ""}`;
  if (item.warningsKey === key) return;
  item.warningsKey = key;
  const cell = item.cells.warnings;
  cell.textContent = "";
  if (f.warnings) item.row.dataset.warnings = String(f.warnings);
  else delete item.row.dataset.warnings;
  if (!f.warnings) return;
  const total = Object.assign(document.createElement("strong"), { textContent: f.warnings.toLocaleString("en") });
  const codes = Object.assign(document.createElement("span"), {
    className: "codes", textContent: codesOf(f).map(([code, n]) => `${code}: ${n.toLocaleString("en")}`).join(", "),
  });
  cell.append(total, " ", codes);
  if (f.warningsUrl) {
    const link = Object.assign(document.createElement("a"), { href: f.warningsUrl, textContent: "CSV" });
    link.setAttribute("aria-label", `Download the warnings of ${item.name}`);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      download(link.href, csvName(item, "warnings"));
    });
    cell.append(" ", link);
  }
}

// A sparkline of the weekly closes (linear scale: a 100x jump shows as a cliff), the weeks with
// a flagged row marked; its text alternative names the range and the warnings.
function paintSeries(item, f) {
  item.drawn = f.series;
  const s = f.series;
  const key = s ? `${s.ticker}|${s.from}|${s.to}|${s.close.join()}|${s.flagged.join()}|${f.warnings}` : "";
  if (item.seriesKey === key) return;
  item.seriesKey = key;
  const cell = item.cells.series;
  cell.textContent = "";
  if (!s || !s.close.length) return;
  const { width, height, pad } = SPARK;
  const low = Math.min(...s.close), high = Math.max(...s.close);
  const n = s.close.length;
  const x = (i) => pad + (n === 1 ? (width - 2 * pad) / 2 : (i * (width - 2 * pad)) / (n - 1));
  const y = (v) => (high === low ? height / 2 : height - pad - ((v - low) * (height - 2 * pad)) / (high - low));
  const svg = document.createElementNS(SVG, "svg");
  for (const [name, value] of [["class", "spark"], ["width", width], ["height", height],
    ["viewBox", `0 0 ${width} ${height}`], ["role", "img"], ["focusable", "false"]]) {
    svg.setAttribute(name, String(value));
  }
  const warned = codesOf(f).map(([code, rows]) => `${code} (${count(rows, "row")})`).join(", ");
  const label = `Weekly closes of ${s.ticker}, ${s.from} to ${s.to}: ${number(s.close[0])} to ` +
    `${number(s.close[n - 1])}, low ${number(low)}, high ${number(high)}; ` +
    (s.flagged.length ? `${count(s.flagged.length, "flagged week")}: ${warned || "warnings"}` : "no warnings");
  svg.setAttribute("aria-label", label);
  svg.dataset.flagged = String(s.flagged.length);
  const title = document.createElementNS(SVG, "title");
  title.textContent = label;
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", s.close.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
  svg.append(title, line);
  for (const i of s.flagged) {
    if (i < 0 || i >= n) continue;
    const dot = document.createElementNS(SVG, "circle");
    for (const [name, value] of [["class", "flag"], ["cx", x(i).toFixed(1)], ["cy", y(s.close[i]).toFixed(1)], ["r", 2.5]]) {
      dot.setAttribute(name, value);
    }
    svg.append(dot);
  }
  cell.append(svg);
}

async function download(url, name) {
  const answer = await fetch(url);
  const link = Object.assign(document.createElement("a"), {
    href: URL.createObjectURL(await answer.blob()),
    download: name,
  });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

// ---------------------------------------------------------------------------- progress

let lastSpoken = 0;

function paintTotals() {
  if (!batch) return;
  const t = batch.totals;
  const s = batch.lastStatus;
  const uploading = t.uploaded + t.failed < t.files;
  const elapsed = (Date.now() - batch.startedAt) / 1000;
  let text;
  if (uploading) {
    const rate = t.sent / Math.max(elapsed, 0.1);
    const eta = rate > 0 ? clock((t.bytes - t.sent) / rate) : "–";
    $("bar").value = t.bytes ? (100 * t.sent) / t.bytes : 0;
    text = `Uploading: ${size(t.sent)} of ${size(t.bytes)}, ${t.uploaded} of ${t.files} files, about ${eta} left`;
  } else {
    const done = s ? s.processed + s.failed : 0;
    $("bar").value = s ? s.progress : 0;
    text = `Processing: ${done} of ${t.files} files finished (${s ? s.failed : 0} failed), ` +
      `${(s ? s.rowsLoaded : 0).toLocaleString("en")} rows loaded`;
  }
  if (t.failed) text += `; ${t.failed} upload(s) failed`;
  $("progress-text").textContent = text;
  if (Date.now() - lastSpoken > 5000) {
    lastSpoken = Date.now();
    $("live").textContent = text;
  }
  const failed = batch.files.some((f) => f.upload === "failed" || f.status === "FAILED");
  $("retry").disabled = !failed;
}

function summary(result) {
  const box = $("summary");
  box.hidden = false;
  box.dataset.status = result.status;
  box.textContent = "";
  const title = document.createElement("h3");
  title.textContent = `Batch ${result.status}`;
  const list = document.createElement("p");
  list.textContent = `${result.completed} completed, ${result.failed} failed` +
    (result.notUploaded ? `, ${result.notUploaded} not uploaded` : "") +
    ` of ${result.total} files; ${result.rowsLoaded.toLocaleString("en")} rows loaded, ` +
    `${result.rowsRejected.toLocaleString("en")} rejected, ${count(result.warnings || 0, "warning")}; ` +
    `wall time ${clock(result.wallSeconds)}`;
  box.append(title, list);
  $("live").textContent = `${title.textContent}. ${list.textContent}`;
  $("pause").disabled = $("cancel").disabled = true;
  const server = result.state;
  $("undo").hidden = !(server && FINAL.has(server.status) && server.processed > 0);
  $("undo").disabled = false;
  if (server?.status === "REVERTED" && server.revert) reverted({ alreadyReverted: true, ...server.revert });
}

// ---------------------------------------------------------------------------------- undo

function offerUndo() {
  if (!batch?.lastStatus) return;
  const s = batch.lastStatus;
  const loaded = batch.files.filter((f) => f.status === "COMPLETED");
  const tickers = new Set(loaded.flatMap((f) => f.tickers || []));
  const text = $("undo-text");
  text.textContent = "";
  const what = document.createElement("p");
  what.textContent = `Batch ${batch.batchId}: ${count(loaded.length, "file")} loaded ` +
    `${count(s.rowsLoaded, "row")} of ${count(tickers.size, "ticker")}. Undoing it changes those rows only:`;
  const list = document.createElement("ul");
  for (const line of [
    "rows this batch added are removed;",
    "rows it changed get back the values they had before it;",
    "rows a later upload has changed since are left as they are, and listed.",
  ]) {
    list.append(Object.assign(document.createElement("li"), { textContent: line }));
  }
  const after = document.createElement("p");
  after.textContent = "The batch becomes REVERTED, once: to load these files again, upload them again.";
  text.append(what, list, after);
  const dialog = $("undo-dialog");
  dialog.returnValue = "";
  dialog.showModal();
}

async function undo() {
  const out = $("undone");
  $("undo").disabled = true;
  out.hidden = false;
  out.textContent = "Undoing the batch…";
  try {
    reverted(await batch.revert());
  } catch (error) {
    out.textContent = `The batch was not undone: ${error.message}`;
    $("undo").disabled = false;
    $("undo").focus();
  }
}

function reverted(done) {
  const box = $("summary");
  box.dataset.status = "REVERTED";
  const title = box.querySelector("h3");
  if (title) title.textContent = "Batch REVERTED";
  $("undo").hidden = true;
  const out = $("undone");
  out.hidden = false;
  out.textContent = "";
  const counts = document.createElement("p");
  counts.textContent = `Undone${done.alreadyReverted ? " (earlier)" : ""}: ` +
    `${count(done.restored, "row")} restored to their earlier values, ${done.removed.toLocaleString("en")} removed, ` +
    `${done.left.toLocaleString("en")} left as they are (changed by a later upload since).`;
  out.append(counts);
  const conflicts = done.conflicts || [];
  if (conflicts.length) {
    const list = document.createElement("ul");
    for (const c of conflicts.slice(0, 100)) {
      const ranges = c.ranges.map((r) => `${r.from === r.to ? r.from : `${r.from} to ${r.to}`} (${count(r.rows, "row")})`);
      list.append(Object.assign(document.createElement("li"), { textContent: `${c.ticker}: ${ranges.join(", ")}` }));
    }
    if (conflicts.length > 100) {
      list.append(Object.assign(document.createElement("li"), { textContent: `and ${count(conflicts.length - 100, "more ticker")}` }));
    }
    out.append(Object.assign(document.createElement("p"), { textContent: "Left as they are:" }), list);
  }
  out.tabIndex = -1;
  out.focus();
  $("live").textContent = `Batch REVERTED. ${counts.textContent}`;
}

// ------------------------------------------------------------------------------- batches

function follow(started, byIndex) {
  batch = started;
  $("pause").disabled = $("cancel").disabled = false;
  $("start").disabled = true;
  $("summary").hidden = true;
  $("undo").hidden = $("undone").hidden = true;
  const update = ({ index }) => {
    const item = byIndex[index];
    if (item) {
      item.entry = batch.files[index];
      touch(item);
    }
  };
  for (const name of ["file-progress", "file-uploaded", "file-failed", "file-missing"]) batch.on(name, update);
  batch.on("batch-created", ({ batchId }) => {
    $("batch-id").textContent = `Batch ${batchId}`;
    batch.files.forEach((f, i) => byIndex[i] && ((byIndex[i].entry = f), touch(byIndex[i])));
  });
  batch.on("batch-status", () => batch.files.forEach((f, i) => byIndex[i] && touch(byIndex[i])));
  batch.on("done", (result) => {
    batch.files.forEach((f, i) => byIndex[i] && touch(byIndex[i]));
    summary(result);
  });
  batch.on("error", ({ message }) => {
    $("checks").textContent = `The upload stopped: ${message}`;
    $("start").disabled = false;
    batch = null;
  });
}

function start() {
  const chosen = items.filter((i) => i.ok);
  if (!chosen.length) return;
  for (const item of items) {
    item.tickerInput?.setAttribute("disabled", "");
    for (const b of item.cells.actions.querySelectorAll("button")) b.remove();
  }
  const started = startBatch(chosen.map((i) => i.file), {
    ...options(),
    tickers: chosen.map((i) => i.ticker.trim() || null),
  });
  follow(started, chosen);
}

function offerResume(saved) {
  resumable = saved;
  const left = saved.files.filter((f) => f.upload !== "uploaded").length;
  $("resume-text").textContent = `Batch ${saved.batchId} (${saved.files.length} files, ` +
    `${left} not uploaded when this page was last open) can be resumed.`;
  $("resume").hidden = false;
}

async function resume() {
  const saved = resumable;
  $("resume").hidden = true;
  items = saved.files.map((f) => ({ name: f.name, size: f.size, ticker: f.ticker || "", ok: true, saved: true }));
  $("files").tBodies[0].textContent = "";
  renderRows();
  const started = resumeBatch(saved, { ...options(), baseUrl: $("base-url").value });
  follow(started, items);
  started.on("file-missing", () => {
    $("checks").textContent = "Some files were too large to keep: choose them again (same names).";
  });
}

function chosen(event) {
  const files = Array.from(event.target.files);
  event.target.value = "";
  if (batch && batch.files.some((f) => f.upload === "missing")) batch.provide(files);
  else add(files);
}

$("pick-files").addEventListener("change", chosen);
$("pick-folder").addEventListener("change", chosen);
$("drop").addEventListener("dragover", (e) => e.preventDefault());
$("drop").addEventListener("drop", dropped);
$("start").addEventListener("click", start);
$("pause").addEventListener("click", () => {
  if (!batch) return;
  if ($("pause").textContent === "Pause") {
    batch.pause();
    $("pause").textContent = "Resume";
  } else {
    batch.resume();
    $("pause").textContent = "Pause";
  }
});
$("cancel").addEventListener("click", async () => {
  await batch?.cancel();
  batch = null;
  $("checks").textContent = "Upload cancelled.";
});
$("retry").addEventListener("click", () => batch?.retryFailed());
$("clear").addEventListener("click", () => {
  if (batch && batch.state !== "done") return;
  items = [];
  batch = null;
  $("files").tBodies[0].textContent = "";
  $("summary").hidden = true;
  $("undo").hidden = $("undone").hidden = true;
  $("start").disabled = true;
  $("checks").textContent = "";
});
$("undo").addEventListener("click", offerUndo);
$("undo-dialog").addEventListener("close", () => $("undo-dialog").returnValue === "undo" && undo());
$("resume-button").addEventListener("click", resume);
$("forget-button").addEventListener("click", async () => {
  await forgetBatch(resumable.batchId);
  $("resume").hidden = true;
});
setup();
