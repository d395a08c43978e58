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
-- `1.2M` -> `1200000`: exact DECIMAL arithmetic, only for the cells that carry a suffix.
CREATE MACRO ingest_unsuffixed(s) AS CASE
    WHEN regexp_full_match(s, '[+]?([0-9]+[.]?[0-9]*|[.][0-9]+)[KkMmBb]') THEN regexp_replace(
        regexp_replace(CAST(CAST(substr(s, 1, length(s) - 1) AS DECIMAL(38, 10))
            * CASE upper(right(s, 1)) WHEN 'K' THEN 1000 WHEN 'M' THEN 1000000
              ELSE 1000000000 END AS VARCHAR), '([.][0-9]*?)0+$', '\1'), '[.]$', '')
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
CREATE MACRO ingest_cell(x) AS CASE WHEN regexp_matches(x, '^[=+\-@\t\r]') THEN '''' || x
    ELSE x END;
CREATE TABLE ingest_reasons (code VARCHAR PRIMARY KEY, message VARCHAR);
