-- DuckDB macros of the reader (shared/reader.py), created once per process.
-- Prices travel as cleaned text, so PostgreSQL stores exactly the digits written; DOUBLE
-- copies serve only to validate (DECIMAL(38, 18) casts cost 30 times more here).

CREATE MACRO ingest_blank(x) AS x IS NULL
    OR regexp_full_match(x, '\s*(-|[Nn][Uu][Ll][Ll]|[Nn][Aa][Nn]|[Nn]/[Aa])?\s*');
CREATE MACRO ingest_trim(x) AS CASE WHEN NOT ingest_blank(x) THEN trim(x) END;
-- Numbers: currency signs and spaces go; `1,234.5` (or `1.234,5` in a decimal-comma file) loses
-- its grouping; anything else keeps its text so that it fails ingest_value (a reason, not 0).
CREATE MACRO ingest_plain(s, comma) AS CASE
    WHEN NOT comma AND regexp_full_match(s, '[+-]?[0-9]{1,3}(,[0-9]{3})+([.][0-9]*)?[KkMmBb]?')
        THEN replace(s, ',', '')
    WHEN comma AND regexp_full_match(s, '[+-]?[0-9]{1,3}([.][0-9]{3})+(,[0-9]*)?[KkMmBb]?')
        THEN replace(replace(s, '.', ''), ',', '.')
    WHEN comma AND regexp_full_match(s, '[+-]?[0-9]*,[0-9]*([eE][+-]?[0-9]{1,3})?[KkMmBb]?')
        THEN replace(s, ',', '.')
    ELSE s END;
-- `1.2M` -> `1200000`: the decimal point moves 3, 6 or 9 places, on the digits as written
-- (exact, whatever their number), only for the cells that carry a suffix.
CREATE MACRO ingest_shifted(i, f, k) AS coalesce(nullif(ltrim(i || left(f || repeat('0', k), k),
    '0'), ''), '0') || CASE WHEN rtrim(substr(f, k + 1), '0') <> ''
    THEN '.' || rtrim(substr(f, k + 1), '0') ELSE '' END;
CREATE MACRO ingest_unsuffixed(s) AS CASE
    WHEN regexp_full_match(s, '[+]?([0-9]+[.]?[0-9]*|[.][0-9]+)[KkMmBb]') THEN ingest_shifted(
        split_part(ltrim(left(s, length(s) - 1), '+'), '.', 1),
        split_part(ltrim(left(s, length(s) - 1), '+'), '.', 2),
        CASE upper(right(s, 1)) WHEN 'K' THEN 3 WHEN 'M' THEN 6 ELSE 9 END)
    ELSE s END;
-- The first branch of each is the common case, tested with one cheap pattern (5x faster).
CREATE MACRO ingest_text(x, comma) AS CASE
    WHEN NOT comma AND regexp_full_match(x, '[0-9]+([.][0-9]+)?') THEN x
    WHEN NOT ingest_blank(x) THEN ingest_unsuffixed(
        ingest_plain(regexp_replace(trim(x), '[$€£¥\s\x{00A0}]', '', 'g'), comma)) END;
CREATE MACRO ingest_value(t) AS CASE
    WHEN regexp_full_match(t, '[0-9]+([.][0-9]+)?') THEN CAST(t AS DOUBLE)
    WHEN regexp_full_match(t, '[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,3})?')
    THEN CAST(t AS DOUBLE) END;
CREATE MACRO ingest_year(y) AS TRY_CAST(y AS INTEGER) + CASE WHEN length(y) <> 2 THEN 0
    WHEN TRY_CAST(y AS INTEGER) <= 68 THEN 2000 ELSE 1900 END;
CREATE MACRO ingest_ymd(y, m, d) AS TRY_CAST(printf('%04d-%02d-%02d', ingest_year(y),
    TRY_CAST(m AS INTEGER), TRY_CAST(d AS INTEGER)) AS DATE);
CREATE MACRO ingest_month(name) AS CASE WHEN length(name) = 3 OR lower(name) IN (
    'january', 'february', 'march', 'april', 'june', 'july', 'august', 'sept', 'september',
    'october', 'november', 'december') THEN list_position(['jan', 'feb', 'mar', 'apr', 'may',
    'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'], lower(left(name, 3))) END;
-- Numeric day/month dates (`1/4/2010`, `05-09-2025`): their parts, the order decided per file.
CREATE MACRO ingest_dm(x) AS regexp_extract(x,
    '^([0-9]{1,2})[/-]([0-9]{1,2})[/-]([0-9]{4}|[0-9]{2})(?:$|[^0-9])', ['a', 'b', 'y']);
-- The date as written: a time or UTC offset after it is ignored, never applied.
CREATE MACRO ingest_date(x, dayfirst) AS CASE
    WHEN x IS NULL THEN NULL
    WHEN regexp_full_match(x, '[0-9]{4}-[0-9]{2}-[0-9]{2}') THEN TRY_CAST(x AS DATE)
    WHEN regexp_matches(x, '^[0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2}(?:$|[^0-9])')
        THEN TRY_CAST(regexp_extract(x, '^[0-9]{4}[-/][0-9]{1,2}[-/][0-9]{1,2}') AS DATE)
    WHEN regexp_full_match(x, '[0-9]{8}') THEN TRY_STRPTIME(x, '%Y%m%d')::DATE
    WHEN regexp_matches(x, '^[0-9]{1,2}[.][0-9]{1,2}[.]([0-9]{4}|[0-9]{2})(?:$|[^0-9])')
        THEN ingest_ymd(regexp_extract(x, '^[0-9]{1,2}[.][0-9]{1,2}[.]([0-9]{4}|[0-9]{2})', 1),
                        regexp_extract(x, '^[0-9]{1,2}[.]([0-9]{1,2})', 1),
                        regexp_extract(x, '^([0-9]{1,2})', 1))
    WHEN ingest_dm(x).a <> '' THEN CASE WHEN dayfirst
        THEN ingest_ymd(ingest_dm(x).y, ingest_dm(x).b, ingest_dm(x).a)
        ELSE ingest_ymd(ingest_dm(x).y, ingest_dm(x).a, ingest_dm(x).b) END
    WHEN regexp_full_match(x, '[0-9]{1,2}[- ][A-Za-z]{3,9}[- ]([0-9]{4}|[0-9]{2})')
        THEN ingest_ymd(regexp_extract(x, '([0-9]+)$', 1),
                        ingest_month(regexp_extract(x, '([A-Za-z]+)', 1)),
                        regexp_extract(x, '^([0-9]+)', 1))
    WHEN regexp_full_match(x, '[A-Za-z]{3,9}[.]? [0-9]{1,2},? [0-9]{4}')
        THEN ingest_ymd(regexp_extract(x, '([0-9]+)$', 1),
                        ingest_month(regexp_extract(x, '^([A-Za-z]+)', 1)),
                        regexp_extract(x, ' ([0-9]+)', 1))
END;
-- Exact order of positive number texts (as ingest_value accepts them), for the rows whose
-- DOUBLE values tie: rounding is monotonic, so DOUBLEs that differ already order their texts.
-- A positive text is 0.D x 10^E with D free of leading and trailing zeros; its key, E (offset,
-- fixed width) then D, orders as the values do.
CREATE MACRO ingest_mantissa(t) AS regexp_extract(t, '^[+-]?([0-9]*[.]?[0-9]*)', 1);
CREATE MACRO ingest_d(t) AS trim(replace(ingest_mantissa(t), '.', ''), '0');
CREATE MACRO ingest_key(t) AS lpad(CAST(100000000 + coalesce(TRY_CAST(regexp_extract(t,
    '[eE]([+-]?[0-9]+)$', 1) AS BIGINT), 0) + strpos(ingest_mantissa(t) || '.', '.') - 1
    - length(replace(ingest_mantissa(t), '.', ''))
    + length(ltrim(replace(ingest_mantissa(t), '.', ''), '0')) AS VARCHAR),
    10, '0') || ingest_d(t);
-- x < y, exactly, for positive x, y: their DOUBLE values and keys (the reader computes a key
-- only for a value that ties another).
CREATE MACRO ingest_lt(xv, xk, yv, yk) AS xv < yv OR (xv = yv AND xk < yk);
-- the sign of a text, exactly (a DOUBLE of 0 may be a tiny non-zero value).
CREATE MACRO ingest_signum(x, xv) AS CASE WHEN xv <> 0 THEN sign(xv) WHEN ingest_d(x) = ''
    THEN 0 WHEN starts_with(x, '-') THEN -1 ELSE 1 END;
CREATE MACRO ingest_cell(x) AS CASE WHEN regexp_matches(x, '^[=+\-@\t\r]') THEN '''' || x
    ELSE x END;
CREATE TABLE ingest_reasons (code VARCHAR PRIMARY KEY, message VARCHAR);
-- Weekdays in [1900-01-01, d) (a Monday): the business days between two dates, for GAP.
CREATE MACRO ingest_bdays(d) AS 5 * ((d - DATE '1900-01-01') // 7)
    + least((d - DATE '1900-01-01') % 7, 5);
