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
export type BatchState = "PENDING" | "PROCESSING" | "COMPLETED" | "PARTIAL" | "FAILED";

export interface Totals { bytes: number; sent: number; files: number; uploaded: number; failed: number }

export interface FileProgress {
  index: number; name: string; loaded: number; total: number; state: UploadState; totals: Totals;
}

export interface StatusFile {
  fileName: string; objectKey: string; status: FileStatus; tickers: string[];
  rowsLoaded: number; rowsRejected: number; error: string | null; rejectsUrl: string | null;
}

/** The status answer's data (docs/contract.md, "status"). */
export interface BatchStatus {
  batchId: string; status: BatchState; progress: number; total: number; processed: number;
  failed: number; rowsLoaded: number; rowsRejected: number; createdAt: string; updatedAt: string;
  queue: { waiting: number; active: number; completed: number; failed: number };
  files: StatusFile[];
}

export interface Summary {
  batchId: string;
  /** The batch's final state; INCOMPLETE while some files were never uploaded. */
  status: BatchState | "INCOMPLETE";
  total: number; completed: number; failed: number; notUploaded: number;
  rowsLoaded: number; rowsRejected: number; wallSeconds: number; state: BatchStatus;
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
  processingError?: string | null;
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
}

export interface SavedBatch {
  batchId: string; savedAt: number; startedAt: number; baseUrl: string; statusUrl: string;
  files: { index: number; name: string; size: number; ticker: string | null; objectKey: string;
    upload: UploadState; kept: boolean }[];
}

export class ApiError extends Error { status: number; code: string }
export function startBatch(files: Iterable<File> | ArrayLike<File>, options: BatchOptions): Batch;
export function resumeBatch(saved: SavedBatch, options: Omit<BatchOptions, "baseUrl"> & { baseUrl?: string; files?: File[] }): Batch;
export function savedBatches(): Promise<SavedBatch[]>;
export function forgetBatch(batchId: string): Promise<void>;
export function backoff(attempt: number, first?: number, cap?: number): number;
