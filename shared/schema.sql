-- Applied by scripts/migrate: idempotent, and safe to run concurrently (advisory lock in migrate()).

CREATE TABLE IF NOT EXISTS tickers (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol text NOT NULL UNIQUE CHECK (symbol <> '' AND symbol = upper(btrim(symbol)))
);

CREATE TABLE IF NOT EXISTS seasonality_data (
    ticker_id integer NOT NULL REFERENCES tickers (id),
    date date NOT NULL,
    open numeric NOT NULL,
    high numeric NOT NULL,
    low numeric NOT NULL,
    close numeric NOT NULL,
    volume numeric NOT NULL DEFAULT 0,
    open_interest numeric NOT NULL DEFAULT 0,
    -- upload time of the object the row came from: a later upload wins whatever the processing order
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticker_id, date)
);

CREATE TABLE IF NOT EXISTS ingest_batches (
    id text PRIMARY KEY,
    file_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS ingest_files (
    object_key text PRIMARY KEY,
    batch_id text NOT NULL REFERENCES ingest_batches (id),
    position integer NOT NULL,
    file_name text NOT NULL,
    ticker_hint text,
    declared_size bigint,
    status text NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')),
    etag text,
    uploaded_at timestamptz,
    rows_loaded bigint NOT NULL DEFAULT 0,
    rows_rejected bigint NOT NULL DEFAULT 0,
    tickers text[] NOT NULL DEFAULT '{}',
    error text,
    rejects_key text,
    attempts integer NOT NULL DEFAULT 0,
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS ingest_files_by_batch ON ingest_files (batch_id, position);

-- Added after the first release: each statement is idempotent.
-- revision: grows with every change of the row; the Redis view keeps an entry only when it is
-- newer than the one it holds, so a rebuild from an older snapshot never overwrites news.
CREATE SEQUENCE IF NOT EXISTS ingest_file_revision;
ALTER TABLE ingest_files
    ADD COLUMN IF NOT EXISTS revision bigint NOT NULL DEFAULT nextval('ingest_file_revision'),
    -- the upload time of the object version seen first (seen_etag), kept for every later
    -- event, retry or reconcile of that version: one source of truth per version
    ADD COLUMN IF NOT EXISTS seen_etag text,
    ADD COLUMN IF NOT EXISTS seen_at timestamptz,
    -- transient failures of the version transient_etag, so a file that keeps failing for a
    -- reason nobody foresaw ends FAILED instead of blocking the sender's queue for ever
    ADD COLUMN IF NOT EXISTS transient_etag text,
    ADD COLUMN IF NOT EXISTS transient_failures integer NOT NULL DEFAULT 0;

-- presigned: made by presign (a batch of objects written straight to the bucket is not); a
-- finished presigned batch takes no files nobody presigned
ALTER TABLE ingest_batches ADD COLUMN IF NOT EXISTS presigned boolean NOT NULL DEFAULT false;
-- owner: shared.access.caller_id of the API token that created the batch
ALTER TABLE ingest_batches ADD COLUMN IF NOT EXISTS owner text;

-- content_key: what a completed version's rows follow from (its bytes by etag and size, the
-- reading rules, the ticker a file without one is loaded under); a later version with the
-- same key is completed from the first one's record, without reading or writing rows
ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS content_key text;
CREATE INDEX IF NOT EXISTS ingest_files_by_content ON ingest_files (content_key, uploaded_at)
    WHERE status = 'COMPLETED' AND content_key IS NOT NULL;

CREATE OR REPLACE FUNCTION ingest_next_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.revision := nextval('ingest_file_revision');
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER ingest_files_revision BEFORE UPDATE ON ingest_files
    FOR EACH ROW EXECUTE FUNCTION ingest_next_revision();

-- Which dates of which ticker each loaded file version holds, at its upload time. An unchanged
-- row is never rewritten (no tuple, no WAL), so its stored uploaded_at may be older than the
-- newest version holding it: this coverage tells an older upload processed later that a newer
-- one holds the date, whether or not the newer one rewrote it.
CREATE TABLE IF NOT EXISTS ingest_coverage (
    ticker_id integer NOT NULL REFERENCES tickers (id),
    uploaded_at timestamptz NOT NULL,
    object_key text NOT NULL,
    etag text NOT NULL,
    dates datemultirange NOT NULL,
    PRIMARY KEY (ticker_id, uploaded_at, object_key, etag)
);

-- Completion notifications (shared/notify.py). final_status: the batch's last final outcome
-- (NULL while it never was final); final_seq numbers its changes, so a transition is
-- (batch, final_seq). Both are set, under the batch row's lock, in the transaction of the
-- file write that made the batch final; finished_at is cleared when a retry re-opens it.
-- notify: the batch's own allow-listed recipients from presign ({"webhook": [...], "email": [...]}).
ALTER TABLE ingest_batches
    ADD COLUMN IF NOT EXISTS final_status text,
    ADD COLUMN IF NOT EXISTS final_seq integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS finished_at timestamptz,
    ADD COLUMN IF NOT EXISTS notify jsonb;

-- The outbox: one row per delivery (channel + target) of a transition, written in the same
-- transaction as the transition; the unique key makes a second write of it impossible.
-- Senders take due rows with FOR UPDATE SKIP LOCKED and keep the outcome of every attempt.
CREATE TABLE IF NOT EXISTS ingest_notifications (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id text NOT NULL REFERENCES ingest_batches (id),
    seq integer NOT NULL,
    -- stable across attempts and channels: webhook-id, CloudEvent id, the email's Message-ID
    event_id text NOT NULL,
    event_type text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('webhook', 'cloudevent', 'email')),
    target text NOT NULL,
    payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'SENT', 'DEAD', 'GONE')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    -- grows with every change: the Redis projection keeps only the newest
    revision bigint NOT NULL DEFAULT nextval('ingest_file_revision'),
    UNIQUE (batch_id, seq, channel, target)
);
CREATE INDEX IF NOT EXISTS ingest_notifications_due
    ON ingest_notifications (next_attempt_at) WHERE state = 'PENDING';

-- Receivers that answered 410 Gone: nothing more is sent to them (delete the row to resume).
CREATE TABLE IF NOT EXISTS ingest_notify_gone (
    target text PRIMARY KEY,
    gone_at timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL
);

-- Plausibility checks (shared/plausibility.py): the file's warnings per code, its warnings CSV,
-- the compact close series the admin page draws, and its own mode from presign (NULL: the
-- deployment's PLAUSIBILITY_MODE).
ALTER TABLE ingest_files
    ADD COLUMN IF NOT EXISTS warnings jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS warnings_key text,
    ADD COLUMN IF NOT EXISTS series jsonb,
    ADD COLUMN IF NOT EXISTS plausibility text CHECK (plausibility IN ('warn', 'reject'));

-- Undo (shared/revert.py). Each file version that loads rows gets a load; every stored row
-- names the load that wrote its value (its lineage: load_id, set by the load transaction's
-- ingest.load_id, so a straight COPY fills it without carrying it), and a row whose value a
-- load changes keeps the value it replaced in ingest_history (an unchanged row is never
-- rewritten, so an identical re-ingest keeps nothing). A revert restores those values and
-- removes the rows its loads inserted; ingest_batches.reverted holds what it did.
CREATE TABLE IF NOT EXISTS ingest_loads (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object_key text NOT NULL,
    etag text NOT NULL,
    -- no foreign key: its check would share-lock the batch row, which every file of the batch
    -- then takes FOR UPDATE to settle it (two such loads would deadlock)
    batch_id text NOT NULL,
    uploaded_at timestamptz NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE ingest_loads DROP CONSTRAINT IF EXISTS ingest_loads_batch_id_fkey;
CREATE INDEX IF NOT EXISTS ingest_loads_by_batch ON ingest_loads (batch_id);
ALTER TABLE seasonality_data ADD COLUMN IF NOT EXISTS load_id bigint
    DEFAULT nullif(current_setting('ingest.load_id', true), '')::bigint;
ALTER TABLE ingest_batches
    ADD COLUMN IF NOT EXISTS reverted_at timestamptz,
    ADD COLUMN IF NOT EXISTS reverted jsonb;
-- One row per value a load replaced: the old value, its upload time and load, and the load
-- that replaced it (recorded_at: pruned after HISTORY_RETENTION_DAYS by scripts/reconcile).
CREATE TABLE IF NOT EXISTS ingest_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    load_id bigint,
    ticker_id integer NOT NULL,
    date date NOT NULL,
    open numeric NOT NULL,
    high numeric NOT NULL,
    low numeric NOT NULL,
    close numeric NOT NULL,
    volume numeric NOT NULL,
    open_interest numeric NOT NULL,
    uploaded_at timestamptz NOT NULL,
    old_load_id bigint,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ingest_history_by_load ON ingest_history (load_id);
CREATE INDEX IF NOT EXISTS ingest_history_by_old_load ON ingest_history (old_load_id);
CREATE INDEX IF NOT EXISTS ingest_history_by_row ON ingest_history (ticker_id, date);
CREATE INDEX IF NOT EXISTS ingest_history_by_age ON ingest_history (recorded_at);
-- A load's update of a row whose value changes: keep the old value, name the new writer. A
-- revert (ingest.reverting) writes its restored rows as they were, keeping nothing.
CREATE OR REPLACE FUNCTION ingest_keep_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.load_id := nullif(current_setting('ingest.load_id', true), '')::bigint;
    INSERT INTO ingest_history (load_id, ticker_id, date, open, high, low, close, volume,
                                open_interest, uploaded_at, old_load_id)
    VALUES (NEW.load_id, OLD.ticker_id, OLD.date, OLD.open, OLD.high, OLD.low, OLD.close,
            OLD.volume, OLD.open_interest, OLD.uploaded_at, OLD.load_id);
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER seasonality_data_history BEFORE UPDATE ON seasonality_data
    FOR EACH ROW
    WHEN ((OLD.open, OLD.high, OLD.low, OLD.close, OLD.volume, OLD.open_interest)
          IS DISTINCT FROM (NEW.open, NEW.high, NEW.low, NEW.close, NEW.volume, NEW.open_interest)
          AND current_setting('ingest.reverting', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION ingest_keep_history();
-- Which file and batch wrote each stored row, and what it replaced: GET /lineage answers it.
CREATE OR REPLACE VIEW ingest_lineage AS
SELECT t.symbol AS ticker, d.date, d.open, d.high, d.low, d.close, d.volume, d.open_interest,
       d.uploaded_at, d.load_id, l.batch_id, l.object_key, l.etag, f.file_name
FROM seasonality_data d
JOIN tickers t ON t.id = d.ticker_id
LEFT JOIN ingest_loads l ON l.id = d.load_id
LEFT JOIN ingest_files f ON f.object_key = l.object_key;
