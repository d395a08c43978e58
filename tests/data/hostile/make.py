"""The hostile corpus: awkward and broken files, each with the outcome the reader must give.

`python tests/data/hostile/make.py` writes the small files into tests/data/hostile/files/ (they
are committed); the large ones are made by `large()` at test time, never committed. The table
of outcomes is README.md beside this file; tests/shared/test_reader_hostile.py checks both.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
H = "Date,Open,High,Low,Close,Volume"


@dataclass(frozen=True)
class Parsed:
    """The file completes: loaded + rejected + superseded == data rows."""

    loaded: int
    rejected: int
    superseded: int = 0
    data_rows: int | None = None  # default: loaded + rejected + superseded

    @property
    def rows(self) -> int:
        return self.loaded + self.rejected + self.superseded


@dataclass(frozen=True)
class Rejected:
    """The file fails with a message containing `cause`."""

    cause: str


Expected = Parsed | Rejected


def rows(n: int, start: int = 1, sep: str = ",", end: str = "\n") -> str:
    """n valid rows, one a day from 2020-01-01 + start."""
    out = []
    for i in range(start, start + n):
        day = f"20{10 + i // 336:02d}-{1 + (i // 28) % 12:02d}-{1 + i % 28:02d}"
        out.append(sep.join([day, "10.5", "12", "9.25", "11", str(100 + i)]) + end)
    return "".join(out)


def _wide(columns: int, bad: bool) -> bytes:
    extra = [f"x{i}" for i in range(columns - 6)]
    lines = [",".join([*H.split(","), *extra])]
    for i in range(1, 21):
        close = "99" if bad and i == 3 else "11"
        lines.append(
            ",".join([f"2024-01-{i:02d}", "10", "12", "9", close, "5", *["7"] * len(extra)])
        )
    return ("\n".join(lines) + "\n").encode()


SMALL: dict[str, tuple[bytes, Expected]] = {
    "cr_only.csv": ((H + "\r" + rows(3, end="\r")).encode(), Parsed(3, 0)),
    "mixed_line_endings.csv": (
        (
            H
            + "\r\n"
            + rows(1, 1, end="\n")
            + rows(1, 2, end="\r")
            + rows(1, 3, end="\r\n")
            + rows(1, 4, end="\n")
        ).encode(),
        Parsed(4, 0),
    ),
    "crlf_split_by_quote.csv": (
        (H + ",Note\r\n" + rows(2, end=',"a\r\nb"\r\n') + rows(1, 5)).encode(),
        Parsed(3, 0),
    ),
    "quoted_newline_first_cell.csv": (
        (H + "\n" + '"2024-01-02\n",1,2,1,2,3\n' + rows(2)).encode(),
        Parsed(3, 0),
    ),
    "quoted_newline_middle_cell.csv": (
        (H + ",Note,Other\n" + '2024-01-02,1,2,1,2,3,"line one\nline two",x\n' + rows(2)).encode(),
        Parsed(3, 0),
    ),
    "quoted_newline_last_cell.csv": (
        (H + ",Note\n" + '2024-01-02,1,2,1,2,3,"a\n\nb\n"\n' + rows(2)).encode(),
        Parsed(3, 0),
    ),
    "quoted_newline_in_price.csv": (
        (H + "\n" + '2024-01-02,"1\n2",2,1,2,3\n' + rows(2)).encode(),
        Parsed(2, 1),
    ),
    "wide_600_columns.csv": (_wide(600, True), Parsed(19, 1)),
    "wide_900_columns.csv": (_wide(900, False), Parsed(20, 0)),
    "wide_1200_columns.csv": (_wide(1200, True), Parsed(19, 1)),
    "wide_3000_columns.csv": (_wide(3000, False), Parsed(20, 0)),
    "cp1252.csv": (
        (
            "Datum;Eröffnung;Hoch;Tief;Schluss;Notiz\n02.01.2024;1;2;1;2;Übertrag €\n"
            "03.01.2024;€;2;1;2;x\n"
        ).encode("cp1252"),
        Parsed(1, 1),
    ),
    "gbk.csv": (
        ("日期,开盘,最高,最低,收盘,成交量\n2024-01-02,1,2,1,2,3\n2024-01-03,1,2,1,2,3\n").encode(
            "gbk"
        ),
        Parsed(2, 0),
    ),
    "utf16_be.csv": (
        b"\xfe\xff" + (H + "\r\n" + rows(3, end="\r\n")).encode("utf-16-be"),
        Parsed(3, 0),
    ),
    "utf16_le_odd_byte.csv": ((H + "\n" + rows(3)).encode("utf-16") + b"\x41", Parsed(3, 0)),
    "non_utf8_after_head.csv": (
        (H + ",Note\n").encode()
        + rows(2000, end=",plain\n").encode()
        + b"2024-06-03,10,12,9,11,5,caf\xe9\n2024-06-04,1\xe9,12,9,11,5,x\n",
        Parsed(2001, 1),
    ),
    "nul_mid_file.csv": (
        (H + "\n" + rows(3000)).encode() + b"2024-06-03,1,2\x00,1,2,3\n",
        Rejected("NUL byte"),
    ),
    "nul_in_head.csv": (
        b"Date,Open,High,Low,Close\n2024-01-02,1,2\x00,1,2\n",
        Rejected("not text"),
    ),
    "bom_inside.csv": (
        ("\ufeff" + H + "\n" + rows(2) + "\ufeff2024-06-03,1,2,1,2,3\n").encode(),
        Parsed(2, 1),
    ),
    "header_only.csv": ((H + "\n").encode(), Parsed(0, 0)),
    "header_only_no_newline.csv": (H.encode(), Parsed(0, 0)),
    "header_repeated_mid_file.csv": (
        (H + "\n" + rows(2) + H + "\n" + rows(2, 5)).encode(),
        Parsed(4, 1),
    ),
    "zero_bytes.csv": (b"", Rejected("empty")),
    "binary_garbage.csv": (bytes((i * 97 + 13) % 256 for i in range(4096)), Rejected("not text")),
    "only_blank_lines.csv": (b"\n\r\n   \n\t\n", Rejected("no header")),
    "blank_and_delimiter_lines.csv": (
        (H + "\n\n,,,,,\n   \n" + rows(2) + ",,,,,\n\n").encode(),
        Parsed(2, 0),
    ),
    "duplicate_column_names.csv": (
        b"Date,Open,High,Low,Close,Close\n2024-01-02,1,2,1,2,99\n",
        Parsed(1, 0),
    ),
    "unicode_minus.csv": (
        (H + "\n2024-01-02,\u22121,2,1,2,3\n2024-01-03,1,2,1,2,\u22123\n" + rows(1)).encode(),
        Parsed(1, 2),
    ),
    "huge_exponent.csv": (
        (H + "\n2024-01-02,1,1e400,1,1,3\n2024-01-03,1,2,1,2,1e400\n" + rows(1)).encode(),
        Parsed(1, 2),
    ),
    "tiny_exponent.csv": (
        (H + "\n2024-01-02,1e-400,1e-400,1e-400,1e-400,0\n" + rows(1)).encode(),
        Parsed(2, 0),
    ),
    "negative_zero.csv": (
        (H + "\n2024-01-02,-0,2,1,2,3\n2024-01-03,1,2,1,2,-0\n" + rows(1)).encode(),
        Parsed(2, 1),
    ),
    "extreme_dates.csv": (
        (H + "\n0000-00-00,1,2,1,2,3\n9999-12-31,1,2,1,2,3\n1900-01-01,1,2,1,2,3\n").encode(),
        Parsed(1, 2),
    ),
    "tabs_inside_quotes.tsv": (
        (
            b'Date\tOpen\tHigh\tLow\tClose\tNote\n2024-01-02\t1\t2\t1\t2\t"a\tb"\n2024-01-03\t"1\t"\t2\t1\t2\tx\n'
        ),
        Parsed(2, 0),
    ),
    "unterminated_quote_at_eof.csv": (
        (H + "\n" + rows(2) + '2024-06-03,"1,2,1,2,3\n').encode(),
        Parsed(2, 1),
    ),
    "stray_quotes.csv": (
        (
            H + "\n" + 'x"y,1,2,1,2,3\n2024-01-02,1"",2,1,2,3\n"2024-01-03"x,1,2,1,2,3\n' + rows(1)
        ).encode(),
        None,
    ),  # type: ignore[dict-item]
    "formula_cells.csv": (
        b"Date,Ticker,Open,High,Low,Close\n2024-01-02,=cmd|' /C calc'!A0,1,2,1,2\n"
        b"2024-01-02,@SUM(A1),1,2,1,2\n2024-01-02,AAPL,1,2,1,2\n",
        Parsed(1, 2),
    ),
    "trailing_bad_rows.csv": (
        (H + "\n" + rows(2) + "2024-13-45,1,2,,2,3\n2024-13-46,1,,1,2,\n").encode(),
        Parsed(2, 2),
    ),
    "footer_lines.csv": (
        (H + "\n" + rows(2) + "Source: Example Exchange\n\nTotal rows,,,,,\n").encode(),
        Parsed(2, 0),
    ),
    "last_occurrence_invalid.csv": (
        (H + "\n2024-01-02,1,2,1,2,3\n2024-01-03,1,2,1,2,3\n2024-01-02,5,2,1,2,3\n").encode(),
        Parsed(1, 1, 1),
    ),
    "high_below_low_by_1e-20.csv": (
        (
            H + "\n2024-01-02,1,1.00000000000000000000,1.00000000000000000001,1,3\n" + rows(1)
        ).encode(),
        Parsed(1, 1),
    ),
    "close_above_high_by_1e-25.csv": (
        (
            H + "\n2024-01-02,1,2,1,2.0000000000000000000000001,3\n2024-01-03,1,2,1,2.000,3\n"
        ).encode(),
        Parsed(1, 1),
    ),
    "suffixed_volumes.csv": (
        (
            H + "\n2024-01-02,1,2,1,2,1.23456789012345678M\n2024-01-03,1,2,1,2,"
            "123456789012345678901234567890M\n2024-01-04,1,2,1,2,0.000000000001K\n"
        ).encode(),
        Parsed(2, 1),
    ),
    "day_month_conflict.csv": (
        (H + "\n13/01/2024,1,2,1,2,3\n01/13/2024,1,2,1,2,3\n").encode(),
        Rejected("day/month order"),
    ),
    "all_rows_invalid.csv": (
        (H + "\n2024-01-02,5,2,1,1,0\n").encode(),
        Rejected("No valid data rows"),
    ),
    "title_lines_and_semicolons.csv": (
        (
            b"Export;2024\r\n\r\nDatum;Otwarcie;Najwyzszy;Najnizszy;Zamkniecie;Wolumen\r\n"
            b"2024-01-02;1,5;2;1;1,75;1.234\r\n"
        ),
        Parsed(1, 0),
    ),
    "short_and_long_rows.csv": (
        (H + "\n2024-01-02,1,2\n2024-01-03,1,2,1,2,3,4,5,6\n").encode(),
        Parsed(1, 1),
    ),
    "missing_close_column.csv": (b"Date,Open,High,Low\n2024-01-02,1,2,1\n", Rejected("close")),
}
del SMALL["stray_quotes.csv"]
SMALL["stray_quotes.csv"] = (
    (H + "\n" + 'x"y,1,2,1,2,3\n2024-01-02,1"",2,1,2,3\n' + rows(1)).encode(),
    Parsed(1, 2),
)


def _long_line(mib: int) -> bytes:
    return (
        H + "\n" + rows(1) + "2024-06-03," + "9" * (mib << 20) + ",2,1,2,3\n" + rows(1, 5)
    ).encode()


def _big_legacy(encoding: str, megabytes: int) -> bytes:
    header = (
        "Datum;Eröffnung;Hoch;Tief;Schluss;Notiz\n"
        if encoding == "cp1252"
        else "日期,开盘,最高,最低,收盘,备注\n"
    )
    sep = ";" if encoding == "cp1252" else ","
    note = "Übertrag €" if encoding == "cp1252" else "中文备注"
    line = rows(336 * 10, sep=sep, end=f"{sep}{note}\n").replace(
        "10.5", "10,5" if sep == ";" else "10.5"
    )
    line = line.replace("9.25", "9,25") if sep == ";" else line
    block = line.encode(encoding)
    return header.encode(encoding) + block * (megabytes * (1 << 20) // len(block) + 1)


# name -> (maker, expected): made into tmp_path at test time.
LARGE: dict[str, tuple[Callable[[], bytes], Expected | None]] = {
    "line_3_mib.csv": (lambda: _long_line(3), Rejected("Line 3 is longer than the limit of 2 MiB")),
    "line_5_mib.csv": (lambda: _long_line(5), Rejected("Line 3 is longer than the limit of 2 MiB")),
    "header_over_64_kib.csv": (
        lambda: (",".join(f"column_{i}" for i in range(8000)) + "\n1,2\n").encode(),
        Rejected("no header row within its first 64 KiB"),
    ),
    "cp1252_40_mb.csv": (lambda: _big_legacy("cp1252", 40), None),  # loads: checked for memory
}


def main() -> None:
    FILES.mkdir(exist_ok=True)
    for name, (body, _) in SMALL.items():
        (FILES / name).write_bytes(body)


if __name__ == "__main__":
    main()
