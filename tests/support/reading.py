"""A file read as process-file reads it, from a local path: layout.detect on its head, then
the reader; the valid rows and rejected rows it wrote, parsed back."""

import csv
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from shared import layout, storage
from shared.reader import ParsedFile, Reader, TickerIds

UPLOADED_AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
HEADER = "Date,Open,High,Low,Close,Volume\n"
ONE_ROW = (HEADER + "2024-01-02,1,2,1,2,3\n").encode()
MAX_CELL_CHARS = 4 << 20  # a rejected row keeps its cells, however long


def numbered(symbols: list[str]) -> dict[str, int]:
    """Ids for a file's symbols as the ledger would hand them out to a fresh table."""
    return {symbol: n for n, symbol in enumerate(sorted(symbols), start=1)}


@dataclass(frozen=True)
class Read:
    parsed: ParsedFile
    # (date text, open, high, low, close, volume, open_interest), as PostgreSQL would hold them
    rows: list[tuple[Any, ...]]
    symbols: list[str]  # the symbol of each row
    rejects: list[list[str]]  # the rejects file, header first; [] when none was written


class LocalReader:
    """Reads CSV bodies written to files below `directory`."""

    def __init__(self, reader: Reader, directory: Path) -> None:
        self.reader = reader
        self.directory = directory

    def read(
        self,
        body: bytes,
        ticker: str | None = "TEST",
        uploaded_at: datetime = UPLOADED_AT,
        ticker_ids: TickerIds = numbered,
    ) -> Read:
        workdir = Path(tempfile.mkdtemp(dir=self.directory))
        path = workdir / "upload.csv"
        path.write_bytes(body)
        found = layout.detect(body[: storage.HEAD_BYTES])
        given: dict[int, str] = {}

        def ids(symbols: list[str]) -> dict[str, int]:
            answer = ticker_ids(symbols)
            given.update({i: s for s, i in answer.items()})
            return answer

        hint = None if "ticker" in found.columns else ticker
        parsed = self.reader.read(str(path), found, hint, uploaded_at, ids, workdir)
        with parsed.rows_csv.open(newline="", encoding="utf-8") as rows_file:
            cells = list(csv.reader(rows_file))
        rejects: list[list[str]] = []
        if parsed.rejects_csv is not None:
            csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL_CHARS))
            with parsed.rejects_csv.open(newline="", encoding="utf-8") as rejects_file:
                rejects = list(csv.reader(rejects_file))
        return Read(
            parsed,
            [(row[1], *(Decimal(v) for v in row[2:8])) for row in cells],
            [given[int(row[0])] for row in cells],
            rejects,
        )
