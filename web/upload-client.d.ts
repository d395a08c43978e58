// Types of upload-client.js (an ES module with no dependencies).

export interface BatchOptions {
  /** Base URL of presign (routes /bulk, /bulk/sign, /bulk/multipart…). */
  baseUrl: string;
  /** Base URL of status (routes /batch/<id>/status, /retry); default: baseUrl. */
  statusUrl?: string;
  /** An API token, sent as `Authorization: Bearer <token>`. */
  token: string;
  /** Ticker per file: by position, or by file name. */
  tickers?: (string | null | undefined)[] | Record<string, string>;
  /** Uploads in flight at once (default 6). */
  concurrency?: number;
  /** Add the files to this existing batch instead of creating one. */
  batchId?: string;
  /** Keep batch state and file contents in IndexedDB for resumeBatch (default true). */
  persist?: boolean;
  /** Largest file whose contents are kept for a resume (default 50 MiB); larger files are
   * asked for again by name. */
  keepFileBytes?: number;
  /** Most bytes kept per batch (default 500 MiB). */
  keepTotalBytes?: number;
  /** Retries of one upload on network errors, 5xx and 429 (default 6). */
  maxRetries?: number;
  /** Fresh URLs for one file after 403/expired answers before it fails (default 4). */
  maxResigns?: number;
  fetch?: typeof fetch;
}

export type UploadState = "queued" | "uploading" | "uploaded" | "failed" | "missing";
export type FileStatus = "PENDING" | "PROCESSING" | "COMPLETED" | "FAILED";
export type BatchState = "PENDING" | "PROCESSING" | "COMPLETED" | "PARTIAL" | "FAILED" | "REVERTED";
export type WarningCode = "UNIT_SWITCH" | "LARGE_MOVE" | "STALE" | "GAP" | "CONFLICT";

/** Weekly closes of a file's main ticker (at most 60 points of whole weeks); `flagged`: the
 * indexes of points with a flagged row. */
export interface Series { ticker: string; from: string; to: string; close: number[]; flagged: number[] }

export interface Totals { bytes: number; sent: number; files: number; uploaded: number; failed: number }

export interface FileProgress {
  index: number; name: string; loaded: number; total: number; state: UploadState; totals: Totals;
}

export interface StatusFile {
  fileName: string; objectKey: string; status: FileStatus; tickers: string[];
  rowsLoaded: number; rowsRejected: number; error: string | null; rejectsUrl: string | null;
  /** Rows flagged by the plausibility checks, per code, and a presigned GET of their CSV. */
  warnings: number; warningCounts: Partial<Record<WarningCode, number>>; warningsUrl: string | null;
  series: Series | null;
}

export interface Conflict { ticker: string; ranges: { from: string; to: string; rows: number }[] }

/** What a revert did (docs/contract.md, "revert"). */
export interface RevertResult {
  batchId: string; status: "REVERTED"; alreadyReverted: boolean; restored: number; removed: number;
  left: number; conflicts: Conflict[]; revertedAt: string;
}

/** The status answer's data (docs/contract.md, "status"). */
export interface BatchStatus {
  batchId: string; status: BatchState; progress: number; total: number; processed: number;
  failed: number; rowsLoaded: number; rowsRejected: number; createdAt: string; updatedAt: string;
  queue: { waiting: number; active: number; completed: number; failed: number };
  files: StatusFile[];
  /** Warnings of all its files. */
  warnings: number;
  /** null, or what its revert did. */
  revert: Omit<RevertResult, "batchId" | "status" | "alreadyReverted"> | null;
}

export interface Summary {
  batchId: string;
  /** The batch's final state; INCOMPLETE while some files were never uploaded. */
  status: BatchState | "INCOMPLETE";
  total: number; completed: number; failed: number; notUploaded: number;
  rowsLoaded: number; rowsRejected: number; warnings: number; wallSeconds: number; state: BatchStatus;
}

export interface BatchEvents {
  "batch-created": { batchId: string; files?: string[]; resumed?: boolean; toUpload?: number };
  "file-progress": FileProgress;
  "file-uploaded": { index: number; name: string; objectKey: string };
  "file-failed": { index: number; name: string; phase: "upload" | "processing"; error: string | null };
  "file-missing": { index: number; name: string; size: number };
  "uploads-finished": Totals;
  "batch-status": BatchStatus;
  done: Summary;
  paused: Record<string, never>;
  resumed: Record<string, never>;
  cancelled: { batchId: string | null };
  error: { error: Error; message: string; code?: string };
}

export interface FileEntry {
  index: number; name: string; size: number; ticker: string | null; objectKey: string;
  upload: UploadState; loaded: number; error: string | null; status: FileStatus;
  rowsLoaded?: number; rowsRejected?: number; tickers?: string[]; rejectsUrl?: string | null;
  processingError?: string | null; warnings?: number;
  warningCounts?: Partial<Record<WarningCode, number>>; warningsUrl?: string | null;
  series?: Series | null;
}

export interface Batch {
  readonly batchId: string | null;
  readonly files: FileEntry[];
  readonly totals: Totals;
  readonly lastStatus: BatchStatus | null;
  /** Resolves once every uploaded file is final (or on cancel / a fatal error). */
  readonly done: Promise<Summary | { batchId: string | null; status: "CANCELLED" | "ERROR"; error?: Error }>;
  on<K extends keyof BatchEvents>(name: K, listener: (detail: BatchEvents[K]) => void): () => void;
  pause(): void;
  resume(): void;
  cancel(): Promise<void>;
  retryFailed(): Promise<{ uploads: number; processing: number }>;
  /** Files chosen again for entries whose contents were not kept. */
  provide(files: Iterable<File>): number;
  /** Undo the batch once every file is final; `lastStatus` is read again (REVERTED). */
  revert(): Promise<RevertResult>;
}

export interface SavedBatch {
  batchId: string; savedAt: number; startedAt: number; baseUrl: string; statusUrl: string;
  files: { index: number; name: string; size: number; ticker: string | null; objectKey: string;
    upload: UploadState; kept: boolean }[];
}

export class ApiError extends Error { status: number; code: string }

/** The calls of the status routes a batch makes; an app may make them alone. */
export class Api {
  constructor(options: Pick<BatchOptions, "baseUrl" | "statusUrl" | "token" | "fetch">);
  status(batchId: string, signal?: AbortSignal, changedSince?: number | null): Promise<BatchStatus>;
  retry(batchId: string): Promise<{ batchId: string; retried: number }>;
  /** `POST …/batch/<id>/revert`: 409 BATCH_NOT_FINAL or REVERT_EXPIRED as an ApiError. */
  revert(batchId: string): Promise<RevertResult>;
}

export function startBatch(files: Iterable<File> | ArrayLike<File>, options: BatchOptions): Batch;
export function resumeBatch(saved: SavedBatch, options: Omit<BatchOptions, "baseUrl"> & { baseUrl?: string; files?: File[] }): Batch;
export function savedBatches(): Promise<SavedBatch[]>;
export function forgetBatch(batchId: string): Promise<void>;
export function revertBatch(batchId: string, options: Pick<BatchOptions, "baseUrl" | "statusUrl" | "token" | "fetch">): Promise<RevertResult>;
export function backoff(attempt: number, first?: number, cap?: number): number;
