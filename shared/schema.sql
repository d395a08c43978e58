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
