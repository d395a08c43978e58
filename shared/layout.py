"""What a file looks like, decided from its first bytes: encoding, delimiter, header, columns."""

import re
from dataclasses import dataclass

from .errors import FileRejectedError

REQUIRED = ("date", "open", "high", "low", "close")
# Each field's header names after normalise(); for close the first present wins.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "date": ("date", "tradedate", "timestamp", "datetime", "dtyyyymmdd"),
    "ticker": ("ticker", "symbol", "code"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close", "close/last", "settle", "last", "price"),
    "volume": ("volume", "vol"),
    "open_interest": ("openinterest", "oi"),
}
DELIMITERS = (",", ";", "\t")
SYMBOL = re.compile(r"^[A-Z0-9.\-_^=/&]{1,20}$")


@dataclass(frozen=True)
class Layout:
    encoding: str
    delimiter: str
    header_line: int
    names: tuple[str, ...]
    columns: dict[str, int]


def normalise(name: str) -> str:
    name = name.strip().strip('"').strip().lower()
    if name.startswith("<") and name.endswith(">"):
        name = name[1:-1]
    return re.sub(r"[\s_.\-]", "", name)


def detect(head: bytes) -> Layout:
    """Decide how to read the file from its head, or reject it with a cause the admin can act on."""
    if not head:
        raise FileRejectedError("The file is empty.")
    encoding, text = _decode(head)
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        delimiter = max(DELIMITERS, key=line.count)
        cells = _split(line, delimiter)
        columns = _columns([normalise(cell) for cell in cells])
        missing = [field for field in REQUIRED if field not in columns]
        if not missing:
            return Layout(encoding, delimiter, number, tuple(cells), columns)
        raise FileRejectedError(
            f"Missing required column(s): {', '.join(missing)} (header line {number + 1}: "
            f"{line.strip()[:200]!r})."
        )
    raise FileRejectedError("The file has no header row.")


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


def _decode(head: bytes) -> tuple[str, str]:
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8", head[3:].decode("utf-8", errors="ignore")
    if b"\x00" in head:
        raise FileRejectedError("The file is not text (it contains NUL bytes).")
    try:
        return "utf-8", head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start > len(head) - 4:  # a character cut at the end of the head
            return "utf-8", head[: error.start].decode("utf-8")
        raise FileRejectedError("The file is not UTF-8 text.") from error


def _split(line: str, delimiter: str) -> list[str]:
    return [cell.strip().strip('"') for cell in line.split(delimiter)]


def _columns(names: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for field, synonyms in SYNONYMS.items():
        for synonym in synonyms:
            if synonym in names:
                columns[field] = names.index(synonym)
                break
    return columns
