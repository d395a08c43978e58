// upload-client.js: the seasonality-ingest upload protocol in one ES module with no
// dependencies and no build step. presign → upload every file exactly as signed (PUT, POST
// form, or S3 multipart with one presigned URL a part) → bulk/process → status until final.
// Types: upload-client.d.ts. Resume after a reload or a crash: savedBatches() + resumeBatch().

const RETRIED = new Set([408, 429, 500, 502, 503, 504]);
const FINAL = new Set(["COMPLETED", "PARTIAL", "FAILED"]);
const DB_NAME = "seasonality-ingest-uploads";

/** An answer of the API that is not a success: `code` and `message` as the contract gives. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

/** Exponential backoff with full jitter: attempt 0 → up to `first` ms, doubling to `cap`. */
export const backoff = (attempt, first = 500, cap = 20000) =>
  Math.random() * Math.min(cap, first * 2 ** attempt);

const online = () =>
  typeof navigator === "undefined" || navigator.onLine !== false
    ? Promise.resolve()
    : new Promise((resolve) => addEventListener("online", resolve, { once: true }));

const trimSlash = (url) => String(url || "").replace(/\/+$/, "");

// ------------------------------------------------------------------------------------- API

/** The API's calls, one method a route (the batch uses it; an app may too). */
export class Api {
  constructor({ baseUrl, statusUrl, token, fetch: fetchImpl }) {
    this.base = trimSlash(baseUrl);
    this.statusBase = trimSlash(statusUrl || baseUrl);
    this.token = token;
    this.fetch = fetchImpl || globalThis.fetch.bind(globalThis);
  }

  async call(method, url, body, signal, attempts = 6) {
    for (let attempt = 0; ; attempt++) {
      let answer;
      try {
        answer = await this.fetch(url, {
          method,
          signal,
          // GETs revalidate with the ETag the last answer carried: 304 costs the server nothing
          ...(method === "GET" ? { cache: "no-cache" } : {}),
          headers: {
            Authorization: `Bearer ${this.token}`,
            ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (error) {
        if (signal?.aborted) throw error;
        if (attempt + 1 >= attempts) throw new ApiError(0, "NETWORK", `${url}: ${error.message}`);
        await online();
        await sleep(backoff(attempt), signal);
        continue;
      }
      if (RETRIED.has(answer.status) && attempt + 1 < attempts) {
        const after = Number(answer.headers.get("Retry-After")) * 1000;
        await sleep(after > 0 ? Math.min(after, 30000) : backoff(attempt), signal);
        continue;
      }
      const text = await answer.text();
      let parsed = null;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON: reported below */
      }
      if (answer.ok && parsed?.success) return parsed.data;
      const error = parsed?.error || { code: "HTTP_" + answer.status, message: text.slice(0, 300) };
      throw new ApiError(answer.status, error.code, error.message);
    }
  }

  presign(files, batchId) {
    return this.call("POST", `${this.base}/bulk`, { files, ...(batchId ? { batchId } : {}) });
  }
  sign(batchId, objectKeys) {
    return this.call("POST", `${this.base}/bulk/sign`, { batchId, objectKeys });
  }
  multipart(path, body) {
    return this.call("POST", `${this.base}/bulk/multipart${path}`, body);
  }
  process(batchId, objectKeys) {
    return this.call("POST", `${this.base}/bulk/process`, { batchId, objectKeys });
  }
  status(batchId, signal, changedSince = null) {
    // polled until the batch is final: a network outage only slows it down. With a cursor
    // from an earlier answer, only the files changed since come back (the totals always do).
    const since = changedSince === null ? "" : `?changedSince=${changedSince}`;
    return this.call("GET", `${this.statusBase}/batch/${batchId}/status${since}`, undefined, signal, 1e9);
  }
  retry(batchId) {
    return this.call("POST", `${this.statusBase}/batch/${batchId}/retry`);
  }
  revert(batchId) {
    // retried like the rest: a revert happens once, a repeated call answers what it did
    return this.call("POST", `${this.statusBase}/batch/${batchId}/revert`);
  }
}

// ------------------------------------------------------------------------------ transfers

/** What one upload attempt came to: ok (with the ETag), "resign", "retry" or "fail". */
function send(target, body, onProgress, signal) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open(target.method, target.uploadUrl);
    let payload = body;
    if (target.method === "POST") {
      payload = new FormData();
      for (const [name, value] of Object.entries(target.fields || {})) payload.append(name, value);
      payload.append("file", body);
    } else {
      for (const [name, value] of Object.entries(target.headers || {})) {
        xhr.setRequestHeader(name, value);
      }
    }
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    const abort = () => xhr.abort();
    signal.addEventListener("abort", abort, { once: true });
    const finish = (outcome) => {
      signal.removeEventListener("abort", abort);
      resolve(outcome);
    };
    xhr.onload = () => {
      const status = xhr.status;
      const reason = s3Reason(xhr.responseText) || `HTTP ${status}`;
      if (status >= 200 && status < 300) {
        finish({ kind: "ok", etag: (xhr.getResponseHeader("ETag") || "").replace(/"/g, "") });
      } else if (status === 403 || /expired/i.test(reason)) {
        finish({ kind: "resign", reason: `upload URL refused (${status}: ${reason})` });
      } else if (RETRIED.has(status)) {
        finish({ kind: "retry", reason: `object store answered ${status}: ${reason}` });
      } else {
        finish({ kind: "fail", reason: `object store refused the file (${status}: ${reason})` });
      }
    };
    xhr.onerror = () => finish({ kind: "retry", reason: "network error" });
    xhr.ontimeout = () => finish({ kind: "retry", reason: "timed out" });
    xhr.onabort = () => finish({ kind: "aborted", reason: "paused" });
    xhr.send(payload);
  });
}

function s3Reason(text) {
  const code = /<Code>([^<]*)<\/Code>/.exec(text || "");
  const message = /<Message>([^<]*)<\/Message>/.exec(text || "");
  return code ? `${code[1]}${message ? ": " + message[1] : ""}` : "";
}

// --------------------------------------------------------------------------- persistence

function openDb() {
  if (typeof indexedDB === "undefined") return Promise.resolve(null);
  return new Promise((resolve) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore("batches", { keyPath: "batchId" });
      request.result.createObjectStore("blobs");
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => resolve(null);
  });
}

let dbPromise;
const db = () => (dbPromise ||= openDb());

async function idb(storeName, mode, work) {
  const database = await db();
  if (!database) return undefined;
  return new Promise((resolve, reject) => {
    const tx = database.transaction(storeName, mode);
    const result = work(tx.objectStore(storeName));
    tx.oncomplete = () => resolve(result?.result);
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

/** Batches this browser started and has not finished or forgotten, newest first. */
export async function savedBatches() {
  const all = (await idb("batches", "readonly", (s) => s.getAll())) || [];
  return all.sort((a, b) => b.savedAt - a.savedAt);
}

/** Forget a saved batch and the file contents kept for it. */
export async function forgetBatch(batchId) {
  await idb("batches", "readwrite", (s) => s.delete(batchId));
  await idb("blobs", "readwrite", (s) => s.delete(IDBKeyRange.bound(`${batchId}/`, `${batchId}/~`)));
}

const keepBlob = (batchId, index, blob) =>
  idb("blobs", "readwrite", (s) => s.put(blob, `${batchId}/${String(index).padStart(5, "0")}`));
const loadBlob = (batchId, index) =>
  idb("blobs", "readonly", (s) => s.get(`${batchId}/${String(index).padStart(5, "0")}`));

// --------------------------------------------------------------------------------- batch

class Batch {
  constructor(options) {
    this.options = { concurrency: 6, keepFileBytes: 50 * 2 ** 20, keepTotalBytes: 500 * 2 ** 20,
      maxRetries: 6, maxResigns: 4, persist: true, ...options };
    this.api = new Api(this.options);
    this.listeners = new Map();
    this.files = [];
    this.batchId = null;
    this.state = "starting"; // uploading | paused | processing | done | cancelled
    this.lastStatus = null;
    this.cursor = null; // the status cursor: later polls fetch only the files changed since
    this.startedAt = Date.now();
    this.controller = new AbortController();
    this.paused = false;
    this.active = new Set();
    this.signing = null;
    this.pollWake = null;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Listen to an event; returns a function that stops listening. */
  on(name, listener) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(listener);
    return () => this.listeners.get(name).delete(listener);
  }

  emit(name, detail) {
    for (const listener of this.listeners.get(name) || []) {
      try {
        listener(detail);
      } catch (error) {
        console.error(error);
      }
    }
  }

  get totals() {
    let bytes = 0, sent = 0, uploaded = 0, failed = 0;
    for (const f of this.files) {
      bytes += f.size;
      sent += f.upload === "uploaded" ? f.size : f.loaded;
      if (f.upload === "uploaded") uploaded++;
      if (f.upload === "failed" || f.upload === "missing") failed++;
    }
    return { bytes, sent, files: this.files.length, uploaded, failed };
  }

  /** Stop starting uploads and abort those in flight (they start again on resume). */
  pause() {
    if (this.state !== "uploading") return;
    this.paused = true;
    this.state = "paused";
    for (const c of this.active) c.abort();
    this.emit("paused", {});
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    this.state = "uploading";
    this.emit("resumed", {});
    this.run();
  }

  /** Abort everything, drop unfinished multipart uploads and forget the saved batch. */
  async cancel() {
    this.state = "cancelled";
    this.controller.abort();
    for (const c of this.active) c.abort();
    for (const f of this.files) {
      if (f.multipart?.uploadId && f.upload !== "uploaded") {
        this.api
          .multipart("/abort", { batchId: this.batchId, objectKey: f.objectKey,
            uploadId: f.multipart.uploadId })
          .catch(() => {});
      }
    }
    if (this.batchId && this.options.persist) await forgetBatch(this.batchId);
    this.emit("cancelled", { batchId: this.batchId });
    this.resolveDone({ batchId: this.batchId, status: "CANCELLED" });
  }

  /** Upload again the files whose upload failed, and process again the files that failed. */
  async retryFailed() {
    const uploads = this.files.filter((f) => f.upload === "failed" && f.blob);
    const processing = this.files.filter((f) => f.status === "FAILED" && f.upload === "uploaded");
    for (const f of uploads) {
      Object.assign(f, { upload: "queued", error: null, loaded: 0, resigns: 0, target: null });
      this.emit("file-progress", this.progress(f));
    }
    if (processing.length) {
      await this.api.retry(this.batchId);
      for (const f of processing) Object.assign(f, { status: "PENDING", error: null });
    }
    if (uploads.length || processing.length) {
      this.state = "uploading";
      this.run();
    }
    return { uploads: uploads.length, processing: processing.length };
  }

  /** Undo the batch (every file final): restored / removed / left counts and the conflicts;
   * the batch's status is read again, so `lastStatus` and a `batch-status` event show it REVERTED. */
  async revert() {
    const done = await this.api.revert(this.batchId);
    this.apply(await this.api.status(this.batchId));
    return done;
  }

  progress(f) {
    return { index: f.index, name: f.name, loaded: f.upload === "uploaded" ? f.size : f.loaded,
      total: f.size, state: f.upload, totals: this.totals };
  }

  fail(f, reason) {
    f.upload = "failed";
    f.error = reason;
    this.emit("file-failed", { index: f.index, name: f.name, phase: "upload", error: reason });
    this.save();
  }

  // ---- start

  async start(files, tickers) {
    try {
      const specs = files.map((file, i) => ({
        name: file.name,
        size: file.size,
        type: "text/csv",
        ...(tickerOf(tickers, file, i) ? { ticker: tickerOf(tickers, file, i) } : {}),
      }));
      const answer = await this.api.presign(specs, this.options.batchId);
      this.batchId = answer.batchId;
      this.multipart = answer.multipart;
      this.files = files.map((file, i) => this.entry(file, i, answer, specs[i].ticker));
      this.emit("batch-created", { batchId: this.batchId, files: this.files.map((f) => f.objectKey) });
      await this.save();
      this.keepBlobs();
      this.run();
    } catch (error) {
      this.fatal(error);
    }
  }

  entry(file, index, answer, ticker) {
    const target = answer.uploadUrls[index];
    return { index, name: file.name, size: file.size, ticker: ticker || null, blob: file,
      objectKey: target.objectKey, target, expiresAt: Date.parse(answer.expiresAt),
      signedAt: Date.now(), upload: "queued", loaded: 0, error: null, resigns: 0,
      status: "PENDING", multipart: null };
  }

  async keepBlobs() {
    if (!this.options.persist) return;
    let total = 0;
    for (const f of this.files) {
      if (f.size > this.options.keepFileBytes || total + f.size > this.options.keepTotalBytes) continue;
      total += f.size;
      try {
        await keepBlob(this.batchId, f.index, f.blob);
        f.kept = true;
      } catch {
        return; // storage full: the rest will be asked for again by name
      }
    }
    this.save();
  }

  fatal(error) {
    this.state = "done";
    this.emit("error", { error, message: error.message, code: error.code });
    this.resolveDone({ batchId: this.batchId, status: "ERROR", error });
  }

  // ---- persistence

  save() {
    if (!this.options.persist || !this.batchId || this.state === "cancelled") return Promise.resolve();
    this.saving ||= new Promise((resolve) =>
      setTimeout(() => {
        this.saving = null;
        const record = {
          batchId: this.batchId, savedAt: Date.now(), baseUrl: this.api.base,
          statusUrl: this.api.statusBase, startedAt: this.startedAt,
          files: this.files.map((f) => ({ index: f.index, name: f.name, size: f.size,
            ticker: f.ticker, objectKey: f.objectKey, upload: f.upload, kept: !!f.kept,
            multipart: f.multipart })),
        };
        idb("batches", "readwrite", (s) => s.put(record)).then(resolve, resolve);
      }, 200),
    );
    return this.saving;
  }

  // ---- uploads

  /** Hand over files asked for again by name (contents too large to keep, or lost). */
  provide(files) {
    const given = new Map(Array.from(files).map((file) => [`${file.name}|${file.size}`, file]));
    let found = 0;
    for (const f of this.files) {
      const file = given.get(`${f.name}|${f.size}`);
      if (file && (f.upload === "missing" || (f.upload === "failed" && !f.blob))) {
        Object.assign(f, { blob: file, upload: "queued", error: null, loaded: 0 });
        found++;
      }
    }
    if (found && !this.paused) this.run();
    return found;
  }

  run() {
    if (this.state === "cancelled") return;
    const workers = Math.max(1, this.options.concurrency) - this.active.size;
    this.state = "uploading";
    for (let i = 0; i < workers; i++) this.worker();
    if (!this.files.some((f) => f.upload === "queued" || f.upload === "uploading")) this.finishUploads();
  }

  async worker() {
    const controller = new AbortController();
    this.active.add(controller);
    try {
      for (;;) {
        if (this.paused || this.state === "cancelled") return;
        const f = this.files.find((x) => x.upload === "queued");
        if (!f) break;
        f.upload = "uploading";
        await this.uploadFile(f, controller);
        if (controller.signal.aborted) {
          if (f.upload === "uploading") f.upload = "queued";
          return;
        }
      }
    } finally {
      this.active.delete(controller);
    }
    if (this.active.size === 0 && !this.paused) this.finishUploads();
  }

  async uploadFile(f, controller) {
    try {
      if (!f.blob) f.blob = await this.findBlob(f);
      if (!f.blob) {
        f.upload = "missing";
        f.error = "choose this file again to upload it";
        this.emit("file-missing", { index: f.index, name: f.name, size: f.size });
        return;
      }
      if (this.multipart && f.size > this.multipart.thresholdBytes && (f.target?.method || "PUT") === "PUT") {
        await this.uploadParts(f, controller.signal);
      } else {
        await this.uploadWhole(f, controller.signal);
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error.code === "FILE_LANDED") return this.landed(f);
      this.fail(f, error.message);
    }
  }

  async findBlob(f) {
    if (!f.kept) return null;
    try {
      return (await loadBlob(this.batchId, f.index)) || null;
    } catch {
      return null;
    }
  }

  landed(f) {
    f.upload = "uploaded";
    f.loaded = f.size;
    this.emit("file-uploaded", { index: f.index, name: f.name, objectKey: f.objectKey });
    this.save();
  }

  async uploadWhole(f, signal) {
    for (let attempt = 0; ; ) {
      if (!(await this.fresh(f))) return;
      const outcome = await send(f.target, f.blob, (loaded) => {
        f.loaded = loaded;
        this.emit("file-progress", this.progress(f));
      }, signal);
      if (outcome.kind === "aborted") return;
      if (outcome.kind === "ok") return this.landed(f);
      f.loaded = 0;
      if (outcome.kind === "resign") {
        if (++f.resigns > this.options.maxResigns) return this.fail(f, outcome.reason);
        f.target = null;
      } else if (outcome.kind === "retry" && ++attempt <= this.options.maxRetries) {
        await online();
        await sleep(backoff(attempt - 1), signal);
      } else {
        return this.fail(f, outcome.reason + (outcome.kind === "retry" ? ` (after ${attempt} tries)` : ""));
      }
    }
  }

  /** Whether the file holds a URL that will not expire before its upload starts; URLs are
   * signed again for the next files in the queue, several at a time, when it would. A file
   * waits for a signing in flight (it may cover it), then has one of its own: it ends with a
   * URL or failed, never waiting for good. */
  async fresh(f) {
    const current = () => {
      const margin = Math.min(60000, (f.expiresAt - f.signedAt) / 2);
      return !!f.target && f.expiresAt - Date.now() > margin;
    };
    while (f.upload === "uploading" && !current()) {
      if (this.signing) {
        await this.signing;
        continue;
      }
      this.signing = this.resign(f).finally(() => (this.signing = null));
      await this.signing;
      if (f.upload === "uploading" && !current()) {
        this.fail(f, "no upload URL that would not expire at once could be signed for it");
      }
    }
    return f.upload === "uploading";
  }

  async resign(first) {
    const chunk = [first, ...this.files.filter((x) => x !== first && x.upload === "queued")]
      .slice(0, Math.max(10, this.options.concurrency * 4));
    const answer = await this.api.sign(this.batchId, chunk.map((x) => x.objectKey));
    const now = Date.now();
    for (const target of answer.uploadUrls) {
      const f = this.files.find((x) => x.objectKey === target.objectKey);
      Object.assign(f, { target, expiresAt: Date.parse(answer.expiresAt), signedAt: now });
    }
    for (const skipped of answer.skipped) {
      const f = this.files.find((x) => x.objectKey === skipped.objectKey);
      if (skipped.code === "FILE_LANDED") this.landed(f);
      else this.fail(f, skipped.message);
    }
  }

  async uploadParts(f, signal) {
    const partBytes = f.multipart?.partBytes || this.multipart.partBytes;
    if (!f.multipart?.uploadId) {
      const created = await this.api.multipart("", { batchId: this.batchId, objectKey: f.objectKey });
      f.multipart = { uploadId: created.uploadId, partBytes: created.partBytes, parts: {} };
      this.save();
    }
    const count = Math.ceil(f.size / f.multipart.partBytes) || 1;
    const sizeOf = (n) => Math.min(f.multipart.partBytes, f.size - (n - 1) * f.multipart.partBytes);
    const base = { batchId: this.batchId, objectKey: f.objectKey, uploadId: f.multipart.uploadId };
    let urls = {};
    const sign = async (from) => {
      const wanted = [];
      for (let n = from; n <= count && wanted.length < 20; n++) if (!f.multipart.parts[n]) wanted.push(n);
      let answer;
      try {
        answer = await this.api.multipart("/parts", { ...base, partNumbers: wanted });
      } catch (error) {
        if (error.code !== "UPLOAD_NOT_FOUND") throw error;
        f.multipart = null; // the store forgot it: start again
        throw Object.assign(new Error("restart"), { restart: true });
      }
      for (const p of answer.uploaded) if (p.size === sizeOf(p.partNumber)) f.multipart.parts[p.partNumber] = p.etag;
      urls = Object.fromEntries(answer.parts.map((p) => [p.partNumber, p.uploadUrl]));
    };
    try {
      await sign(1);
      for (let n = 1; n <= count; n++) {
        if (f.multipart.parts[n]) continue;
        await this.uploadPart(f, n, sizeOf(n), () => urls[n], sign, signal);
        if (signal.aborted || f.upload !== "uploading") return;
      }
    } catch (error) {
      if (error.restart) return this.uploadParts(f, signal);
      throw error;
    }
    const parts = Object.entries(f.multipart.parts).map(([n, etag]) => ({ partNumber: Number(n), etag }));
    await this.api.multipart("/complete", { ...base, parts });
    this.landed(f);
  }

  async uploadPart(f, n, size, url, sign, signal) {
    const start = (n - 1) * f.multipart.partBytes;
    const before = () => Object.keys(f.multipart.parts).reduce((sum, k) =>
      sum + Math.min(f.multipart.partBytes, f.size - (k - 1) * f.multipart.partBytes), 0);
    for (let attempt = 0, resigns = 0; ; ) {
      if (!url()) await sign(n);
      const target = { method: "PUT", uploadUrl: url(), headers: {} };
      const outcome = await send(target, f.blob.slice(start, start + size), (loaded) => {
        f.loaded = before() + loaded;
        this.emit("file-progress", this.progress(f));
      }, signal);
      if (outcome.kind === "aborted") return;
      if (outcome.kind === "ok") {
        if (!outcome.etag) {
          return this.fail(f, "the object store hides the ETag of a part (its CORS must expose ETag)");
        }
        f.multipart.parts[n] = outcome.etag;
        f.loaded = before();
        this.save();
        return;
      }
      if (outcome.kind === "resign" && ++resigns <= this.options.maxResigns) {
        await sign(n);
      } else if (outcome.kind === "retry" && ++attempt <= this.options.maxRetries) {
        await online();
        await sleep(backoff(attempt - 1), signal);
      } else {
        return this.fail(f, `part ${n}: ${outcome.reason}`);
      }
    }
  }

  // ---- processing

  async finishUploads() {
    if (this.state === "cancelled" || !this.batchId) return;
    if (this.finishing) return void (this.again = true);
    this.finishing = true;
    this.again = false;
    try {
      const keys = this.files.filter((f) => f.upload === "uploaded" && !FINAL.has(f.status))
        .map((f) => f.objectKey);
      this.state = "processing";
      this.emit("uploads-finished", this.totals);
      if (keys.length) await this.api.process(this.batchId, keys);
      await this.poll();
    } catch (error) {
      if (this.state !== "cancelled") this.fatal(error);
    } finally {
      this.finishing = false;
    }
    if (this.again && this.state !== "done") this.finishUploads();
  }

  /** Status until every uploaded file is final: every 0.5 s while files move, slowing to
   * every 10 s while nothing changes. */
  async poll() {
    let pause = 500, last = "";
    for (;;) {
      const status = await this.api.status(this.batchId, this.controller.signal, this.cursor);
      this.apply(status);
      this.cursor = status.cursor ?? null;
      const moved = `${status.updatedAt}|${status.processed}|${status.failed}`;
      pause = moved === last ? Math.min(pause * 1.6, 10000) : 500;
      last = moved;
      const waiting = this.files.some((f) => f.upload === "uploaded" && !FINAL.has(f.status));
      // Revisions are taken when a file changes, not when its change reaches the view, so an
      // entry can land under a cursor already handed out: when the batch counts more final
      // files than this copy holds, the next poll asks for every file.
      const final = this.files.filter((f) => FINAL.has(f.status)).length;
      if (waiting && final < (status.processed ?? 0) + (status.failed ?? 0)) this.cursor = null;
      const uploading = this.files.some((f) => ["queued", "uploading"].includes(f.upload));
      if (!waiting && !uploading) break;
      if (uploading) return; // the uploads still running call poll again when they finish
      await sleep(pause, this.controller.signal);
      if (this.state === "cancelled") return;
    }
    const summary = this.summary();
    this.state = "done";
    if (summary.status !== "INCOMPLETE" && this.options.persist) forgetBatch(this.batchId);
    else this.save();
    this.emit("done", summary);
    this.resolveDone(summary);
  }

  apply(status) {
    this.lastStatus = status;
    const byKey = new Map(this.files.map((f) => [f.objectKey, f]));
    for (const entry of status.files) {
      const f = byKey.get(entry.objectKey);
      if (!f) continue;
      const failedNow = entry.status === "FAILED" && f.status !== "FAILED";
      Object.assign(f, { status: entry.status, rowsLoaded: entry.rowsLoaded,
        rowsRejected: entry.rowsRejected, tickers: entry.tickers, rejectsUrl: entry.rejectsUrl,
        processingError: entry.error, warnings: entry.warnings ?? 0,
        warningCounts: entry.warningCounts || {}, warningsUrl: entry.warningsUrl ?? null,
        series: entry.series ?? null });
      if (failedNow) this.emit("file-failed", { index: f.index, name: f.name, phase: "processing", error: entry.error });
    }
    this.emit("batch-status", status);
  }

  summary() {
    const s = this.lastStatus;
    const notUploaded = this.files.filter((f) => f.upload !== "uploaded").length;
    return { batchId: this.batchId, status: notUploaded ? "INCOMPLETE" : s.status, total: s.total,
      completed: s.processed, failed: s.failed, notUploaded, rowsLoaded: s.rowsLoaded,
      rowsRejected: s.rowsRejected, warnings: s.warnings ?? 0, wallSeconds: (Date.now() - this.startedAt) / 1000, state: s };
  }

  // ---- resume

  async resumeFrom(saved, files) {
    try {
      this.batchId = saved.batchId;
      this.startedAt = saved.startedAt || Date.now();
      const given = new Map((files || []).map((file) => [`${file.name}|${file.size}`, file]));
      const status = await this.api.status(this.batchId, this.controller.signal);
      const serverState = new Map(status.files.map((e) => [e.objectKey, e.status]));
      this.files = saved.files.map((s) => ({ ...s, blob: given.get(`${s.name}|${s.size}`) || null,
        target: null, expiresAt: 0, signedAt: 0, loaded: 0, error: null, resigns: 0,
        status: serverState.get(s.objectKey) || "PENDING",
        upload: serverState.get(s.objectKey) === "PENDING" ? "queued" : "uploaded" }));
      this.apply(status);
      const pending = this.files.filter((f) => f.upload === "queued");
      for (let i = 0; i < pending.length; i += 500) {
        const chunk = pending.slice(i, i + 500);
        const answer = await this.api.sign(this.batchId, chunk.map((f) => f.objectKey));
        this.multipart = answer.multipart;
        const now = Date.now();
        for (const target of answer.uploadUrls) {
          Object.assign(chunk.find((f) => f.objectKey === target.objectKey),
            { target, expiresAt: Date.parse(answer.expiresAt), signedAt: now });
        }
        for (const skipped of answer.skipped) {
          const f = chunk.find((x) => x.objectKey === skipped.objectKey);
          f.upload = skipped.code === "FILE_LANDED" ? "uploaded" : "failed";
          if (f.upload === "failed") f.error = skipped.message;
        }
      }
      this.emit("batch-created", { batchId: this.batchId, resumed: true,
        toUpload: this.files.filter((f) => f.upload === "queued").length });
      this.run();
    } catch (error) {
      this.fatal(error);
    }
  }
}

function tickerOf(tickers, file, index) {
  if (!tickers) return null;
  const value = Array.isArray(tickers) ? tickers[index] : tickers[file.name];
  return value && String(value).trim() ? String(value).trim() : null;
}

/**
 * Upload `files` as one batch: presign, upload (bounded concurrency, retries with backoff,
 * URLs signed again when they would expire or are refused), bulk/process, status until final.
 */
export function startBatch(files, options) {
  const batch = new Batch(options);
  batch.start(Array.from(files), options.tickers);
  return batch;
}

/** Undo a batch by its id, without a batch object (see Batch.revert). */
export function revertBatch(batchId, options) {
  return new Api(options).revert(batchId);
}

/** Continue a saved batch (see savedBatches): only files that never landed are uploaded;
 * `files` may give again the ones whose contents were too large to keep. */
export function resumeBatch(saved, options) {
  const batch = new Batch({ baseUrl: saved.baseUrl, statusUrl: saved.statusUrl, ...options });
  batch.resumeFrom(saved, options.files);
  return batch;
}
