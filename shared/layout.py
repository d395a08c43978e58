"""What a file looks like, decided from its first bytes: encoding, delimiter, header, columns."""

import codecs
import csv
import re
import unicodedata
from dataclasses import dataclass, field

from .errors import FileRejectedError

REQUIRED = ("date", "open", "high", "low", "close")
# Each field's header names after normalise(); for close the first present wins. Besides the
# contract's English names: Dutch (Investing.com), German, Polish (Stooq.pl) and Chinese
# (TongDaXin) exports. `Adj Close` is deliberately absent: it never stands in for close.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "date": ("date", "tradedate", "timestamp", "datetime", "dtyyyymmdd", "datum", "data", "日期"),
    "ticker": ("ticker", "symbol", "code", "代码"),
    "open": ("open", "otwarcie", "eröffnung", "eroeffnung", "opening", "开盘"),
    "high": ("high", "hoog", "hoch", "najwyzszy", "najwyższy", "最高"),
    "low": ("low", "laag", "tief", "najnizszy", "najniższy", "最低"),
    "close": (
        "close",
        "close/last",
        "settle",
        "last",
        "price",
        "laatste",
        "slot",
        "schluss",
        "schlusskurs",
        "zamkniecie",
        "zamknięcie",
        "收盘",
    ),
    "volume": ("volume", "vol", "wolumen", "volumen", "成交量"),
    "open_interest": ("openinterest", "oi", "openint"),
}
DELIMITERS = (",", ";", "\t")
SYMBOL = re.compile(r"^[A-Z0-9.\-_^=/&]{1,20}$")
# Code points no text file is made of (C0/C1 controls other than tab, CR, LF, FF).
_CP1252 = {
    byte: bytes([byte]).decode("cp1252")
    for byte in range(0x80, 0xA0)
    if byte not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}
HEAD_BYTES = 65536  # what process-file reads of each object to decide its layout
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Layout:
    encoding: str  # what DuckDB's read_csv is told: utf-8 or utf-16 (LE)
    delimiter: str  # the data rows' delimiter (the header's may differ, as in TongDaXin files)
    header_line: int  # 0-based physical line of the header
    names: tuple[str, ...]
    columns: dict[str, int]
    # Set when DuckDB cannot decode the file itself (cp1252, gbk, utf-16 big-endian: its
    # latin-1 refuses bytes 0x80-0x9F): the reader transcodes the object to UTF-8 first.
    text_encoding: str | None = field(default=None)


def normalise(name: str) -> str:
    name = name.strip().strip('"').strip().lower()
    if name.startswith("<") and name.endswith(">"):
        name = name[1:-1]
    return re.sub(r"[\s_.\-]", "", name)


def detect(head: bytes) -> Layout:
    """Decide how to read the file from its head, or reject it with a cause the admin can act on.

    Only FileRejectedError leaves: whatever the bytes, a file never fails in another way."""
    try:
        return _detect(head)
    except FileRejectedError:
        raise
    except Exception as error:  # noqa: BLE001 - the head's content is the cause
        raise FileRejectedError(
            f"The file's first lines cannot be read ({type(error).__name__}: {error})."
        ) from error


def _detect(head: bytes) -> Layout:
    full = len(head) >= HEAD_BYTES
    if not head:
        raise FileRejectedError("The file is empty.")
    if head.startswith(b"\xfe\xff"):
        return _find_header(_decoded(head[2:], "utf-16-be"), "utf-8", "utf-16", head_full=full)
    if head.startswith(b"\xff\xfe"):
        return _find_header(_decoded(head[2:], "utf-16-le"), "utf-16", head_full=full)
    if head.startswith(b"\xef\xbb\xbf"):
        return _find_header(_decoded(head[3:], "utf-8"), "utf-8", head_full=full)
    if b"\x00" in head:
        raise FileRejectedError("The file is not text (it contains NUL bytes).")
    try:
        return _find_header(_decoded(head, "utf-8"), "utf-8", head_full=full)
    except UnicodeDecodeError:
        pass
    # Legacy encodings: the header decides between a Western single-byte code page and GBK
    # (Chinese exports); Western is tried first.
    western = _legacy_text(head)
    try:
        return _find_header(western, "utf-8", "cp1252", head_full=full)
    except FileRejectedError as error:
        try:
            chinese = _decoded(head, "gbk")
        except UnicodeDecodeError:
            raise error from None
        try:
            return _find_header(chinese, "utf-8", "gbk", head_full=full)
        except FileRejectedError:
            raise error from None


def decode_legacy(data: bytes, encoding: str) -> str:
    """A whole legacy file as text; cp1252's five unassigned bytes read as latin-1, GBK as its
    superset GB18030."""
    if encoding == "cp1252":
        return _legacy_text(data)
    return data.decode("gb18030" if encoding == "gbk" else encoding, "replace")


def ticker_from_name(file_name: str) -> str | None:
    """The contract's file-name rule: `aapl_daily.csv` -> AAPL, `nvda-2014.txt` -> NVDA."""
    stem = file_name.rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    stem = re.split(r"[ _]", stem, maxsplit=1)[0]
    stem = re.split(r"-(?=\d)", stem, maxsplit=1)[0]
    symbol = stem.strip().upper()
    return symbol if is_symbol(symbol) else None


def is_symbol(value: str) -> bool:
    return bool(SYMBOL.match(value)) and not value.startswith(("=", "+", "-", "@"))


def _decoded(data: bytes, encoding: str) -> str:
    """Strict decoding; a character cut by the end of the head is dropped, not an error."""
    return codecs.getincrementaldecoder(encoding)("strict").decode(data, final=False)


def _legacy_text(data: bytes) -> str:
    """cp1252, with its five unassigned bytes read as latin-1 (as browsers do)."""
    return data.decode("latin-1").translate(_CP1252)


def _find_header(
    text: str, encoding: str, text_encoding: str | None = None, head_full: bool = False
) -> Layout:
    """The first line (within the head) naming every required column is the header: title
    lines above it are skipped."""
    if len(_CONTROL.findall(text)) > max(2, len(text) // 100):
        raise FileRejectedError("The file is not text (it contains control characters).")
    # CRLF, LF, CR alone or mixed: each ends a line, as for the reader (which rewrites them).
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if head_full:  # the last line may be cut by the end of the head: it is no header
        lines = lines[:-1]
    first: tuple[int, list[str]] | None = None
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        delimiter = max(DELIMITERS, key=line.count)
        cells = _split(line, delimiter)
        columns = _columns([normalise(cell) for cell in cells])
        missing = [name for name in REQUIRED if name not in columns]
        if not missing:
            data = _data_delimiter(lines[number + 1 :], delimiter)
            return Layout(encoding, data, number, tuple(cells), columns, text_encoding)
        if first is None:
            first = number, missing
    if first is None:
        if head_full and not any(line.strip() for line in lines):
            raise FileRejectedError(
                f"The file has no header row within its first {HEAD_BYTES // 1024} KiB"
                " (its first line is longer than that)."
            )
        raise FileRejectedError("The file has no header row.")
    number, missing = first
    raise FileRejectedError(
        f"Missing required column(s): {', '.join(missing)} (header line {number + 1}: "
        f"{lines[number].strip()[:200]!r})."
    )


def _data_delimiter(rows: list[str], header_delimiter: str) -> str:
    """TongDaXin writes a tab-separated header above comma-separated rows: the first data row
    decides when it does not contain the header's delimiter."""
    for row in rows:
        if row.strip():
            if header_delimiter in row:
                return header_delimiter
            best = max(DELIMITERS, key=row.count)
            return best if row.count(best) else header_delimiter
    return header_delimiter


def _split(line: str, delimiter: str) -> list[str]:
    try:
        cells = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [])
    except csv.Error:  # a stray quote or NUL: the plain split still names the columns
        cells = line.split(delimiter)
    return [unicodedata.normalize("NFC", cell).strip().strip('"') for cell in cells]


def _columns(names: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for name, synonyms in SYNONYMS.items():
        for synonym in synonyms:
            if synonym in names:
                columns[name] = names.index(synonym)
                break
    return columns
