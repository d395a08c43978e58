"""Writes the look-alike sample files: invented prices in the exact layout of real exports.

Each file reproduces the format traits of one third-party file that cannot be redistributed
(see README.md beside this script); every number is made up by a seeded random walk, so the
output is the same on every run:

    python tests/data/lookalike/make.py            # rewrite the files beside this script
    python tests/data/lookalike/make.py --out DIR  # write them somewhere else
"""

import argparse
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Bar:
    day: date
    open: float
    high: float
    low: float
    close: float
    volume: float


def weekdays(start: date, count: int, skip: Callable[[int], bool] = lambda n: False) -> list[date]:
    """`count` weekdays from `start` on, leaving out the n-th weekday when skip(n)."""
    days: list[date] = []
    day, n = start, 0
    while len(days) < count:
        if day.weekday() < 5:
            if not skip(n):
                days.append(day)
            n += 1
        day += timedelta(days=1)
    return days


def walk(seed: int, days: list[date], price: float, step: float, digits: int) -> list[Bar]:
    """A valid bar per day (low <= open, close <= high), prices rounded to `digits`."""
    rng = random.Random(seed)
    bars: list[Bar] = []
    close = price
    for day in days:
        open_ = round(close + (rng.random() - 0.5) * step, digits)
        close = round(open_ + (rng.random() - 0.5) * 2 * step, digits)
        high = round(max(open_, close) + rng.random() * step, digits)
        low = round(min(open_, close) - rng.random() * step, digits)
        volume = round(1_000_000 * (0.5 + rng.random() * 4))
        bars.append(Bar(day, open_, high, low, close, volume))
    return bars


def fixed(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def short(value: float, digits: int = 4) -> str:
    """A number the way Stooq and Nasdaq write it: no trailing zeros (`10`, `11.2`)."""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text or "0"


def grouped(value: float, digits: int = 2, decimal: str = ".", group: str = ",") -> str:
    whole, _, fraction = f"{value:,.{digits}f}".partition(".")
    return whole.replace(",", group) + (decimal + fraction if fraction else "")


def lines(rows: Iterator[str] | list[str], end: str, final: bool = True) -> bytes:
    text = end.join(rows)
    return (text + (end if final else "")).encode()


def quoted(cells: list[str]) -> str:
    return ",".join(f'"{cell}"' for cell in cells)


def investing_english() -> bytes:
    """Investing.com (English, DD-MM-YYYY locale): BOM, every field quoted, close called
    `Price`, thousands separators, `M` volumes, `Change %`, newest first, no final newline."""
    bars = walk(101, weekdays(date(2024, 3, 4), 20), 1480.0, 18.0, 2)
    rows = ['"Date","Price","Open","High","Low","Vol.","Change %"']
    previous = 1480.0
    cells = []
    for bar in bars:
        change = (bar.close - previous) / previous * 100
        previous = bar.close
        cells.append(
            quoted(
                [
                    bar.day.strftime("%d-%m-%Y"),
                    grouped(bar.close),
                    grouped(bar.open),
                    grouped(bar.high),
                    grouped(bar.low),
                    f"{bar.volume / 1e6 * 2:.2f}M",
                    f"{change:.2f}%",
                ]
            )
        )
    rows += reversed(cells)
    return BOM + lines(rows, "\n", final=False)


def investing_dutch() -> bytes:
    """Investing.com in Dutch: localised header, decimal comma inside the quotes (prices,
    `K`/`M` volumes, percentages), DD-MM-YYYY, BOM, newest first, no final newline."""
    bars = walk(202, weekdays(date(2023, 1, 2), 60), 24.0, 0.6, 2)
    rows = ['"Datum","Laatste","Open","Hoog","Laag","Vol.","+/- %"']
    previous = 24.0
    cells = []
    for n, bar in enumerate(bars):
        change = (bar.close - previous) / previous * 100
        previous = bar.close
        volume = (
            f"{bar.volume / 4e3:.2f}K".replace(".", ",")
            if n % 3 == 1
            else f"{bar.volume / 1e6:.2f}M".replace(".", ",")
        )
        cells.append(
            quoted(
                [
                    bar.day.strftime("%d-%m-%Y"),
                    *(
                        fixed(v, 2).replace(".", ",")
                        for v in (bar.close, bar.open, bar.high, bar.low)
                    ),
                    volume,
                    f"{change:.2f}%".replace(".", ","),
                ]
            )
        )
    rows += reversed(cells)
    return BOM + lines(rows, "\n", final=False)


def nasdaq_2020() -> bytes:
    """Nasdaq.com 2020: `, ` between cells, `$` prices without trailing zeros, close before
    open, MM/DD/YYYY, newest first, CRLF."""
    bars = walk(303, weekdays(date(2019, 1, 2), 120), 160.0, 2.5, 2)
    rows = ["Date, Close/Last, Volume, Open, High, Low"]
    for bar in reversed(bars):
        cells = [bar.day.strftime("%m/%d/%Y"), "$" + short(bar.close), str(int(bar.volume * 30))]
        cells += ["$" + short(v) for v in (bar.open, bar.high, bar.low)]
        rows.append(", ".join(cells))
    return lines(rows, "\r\n")


def stooq_bulk() -> bytes:
    """Stooq bulk ASCII: `<TICKER>,<PER>,<DATE>,<TIME>,...`, YYYYMMDD, CRLF; the ticker in
    the rows (ABCW.US) is not the one the file name suggests (abcx.us.txt)."""
    bars = walk(404, weekdays(date(2022, 6, 1), 90), 12.0, 0.4, 3)
    rows = ["<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>"]
    for bar in bars:
        prices = ",".join(short(v, 3) for v in (bar.open, bar.high, bar.low, bar.close))
        rows.append(f"ABCW.US,D,{bar.day:%Y%m%d},000000,{prices},{int(bar.volume / 5)},0")
    return lines(rows, "\r\n")


def stooq_pl() -> bytes:
    """Stooq.pl download: Polish header, ISO dates ascending, LF; the early rows are
    split-adjusted (4-decimal prices, fractional volumes), the later ones are not."""
    bars = walk(505, weekdays(date(2020, 3, 2), 80), 31.0, 0.5, 4)
    rng = random.Random(506)
    rows = ["Data,Otwarcie,Najwyzszy,Najnizszy,Zamkniecie,Wolumen"]
    for n, bar in enumerate(bars):
        prices = (bar.open, bar.high, bar.low, bar.close)
        if n < 40:
            volume = f"{bar.volume / 300 + rng.random():.10f}".rstrip("0")
            rows.append(f"{bar.day},{','.join(short(v, 4) for v in prices)},{volume}")
        else:
            rows.append(f"{bar.day},{','.join(short(v, 2) for v in prices)},{int(bar.volume / 50)}")
    return lines(rows, "\n")


def metastock() -> bytes:
    """MetaStock ASCII (bossa.pl): `<DTYYYYMMDD>`, 4-decimal prices, 3-decimal volumes, CRLF;
    the first year is a single daily fixing on some weekdays (open = high = low = close)."""
    fixing = weekdays(date(1995, 5, 8), 30, skip=lambda n: n % 5 in (1, 3))
    rng = random.Random(606)
    rows = ["<TICKER>,<DTYYYYMMDD>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>"]
    level = 500.0
    for day in fixing:
        level = round(level * (1 + (rng.random() - 0.45) * 0.06), 1)
        volume = f"{round(20_000 + rng.random() * 90_000) / 2:.3f}"
        rows.append(f"MIDX30,{day:%Y%m%d}," + ",".join([fixed(level, 4)] * 4) + f",{volume}")
    bars = walk(607, weekdays(date(1996, 1, 2), 70), level, 8.0, 2)
    for bar in bars:
        prices = ",".join(fixed(v, 4) for v in (bar.open, bar.high, bar.low, bar.close))
        volume = f"{bar.volume / 20 + rng.random():.3f}"
        rows.append(f"MIDX30,{bar.day:%Y%m%d},{prices},{volume}")
    return lines(rows, "\r\n")


def quandl_chris() -> bytes:
    """Quandl CHRIS continuous future: `Last` mostly empty and `Settle` always filled, `Change`
    empty on the older rows, float volumes and open interest, newest first, LF; three bars are
    broken: only Settle/Volume/OI, no Open, and High and Low 0.0."""
    bars = walk(707, weekdays(date(2009, 9, 1), 150), 70.0, 0.9, 2)
    rng = random.Random(708)
    rows = ["Date,Open,High,Low,Last,Change,Settle,Volume,Open Interest"]
    cells = []
    previous = 70.0
    for n, bar in enumerate(bars):
        settle = bar.close
        change = f"{abs(settle - previous):.2f}" if n >= 60 else ""
        previous = settle
        last = fixed(round(settle - 0.07, 2), 2).rstrip("0").rstrip(".") if n % 17 == 5 else ""
        last = last if not last or bar.low <= float(last) <= bar.high else ""
        o, h, lo = (short(v, 2) for v in (bar.open, bar.high, bar.low))
        volume, interest = f"{bar.volume / 8:.1f}", f"{round(150_000 + rng.random() * 90_000)}.0"
        if n == 40:  # a settlement-only bar
            o = h = lo = ""
            volume = "0.0"
        elif n == 75:  # no open
            o = ""
        elif n == 110:  # high and low zero
            h = lo = "0.0"
        cells.append(
            f"{bar.day},{o},{h},{lo},{last},{change},{short(settle, 2)},{volume},{interest}"
        )
    rows += reversed(cells)
    return lines(rows, "\n")


def tongdaxin() -> bytes:
    """TongDaXin export: GBK, CRLF, a title line, a tab-separated space-padded Chinese header
    over comma-separated rows, YYYY/MM/DD, turnover with 2 decimals, forward-adjusted prices
    that fall to zero and below in the older rows, and a footer line."""
    days = weekdays(date(2003, 1, 6), 140)
    rng = random.Random(808)
    rows = ["609999 示例科技 日线 前复权"]
    names = ("日期", "开盘", "最高", "最低", "收盘", "成交量", "成交额")
    rows.append("\t".join(" " * (6 if n == 0 else 4) + name for n, name in enumerate(names)))
    # positive, then a stretch pushed to zero and below by the adjustment, then positive again
    level = 0.80
    for n, day in enumerate(days):
        target = -0.40 if 25 <= n < 75 else 1.20
        level += (target - level) * 0.08 + (rng.random() - 0.5) * 0.04
        open_ = round(level + (rng.random() - 0.5) * 0.04, 2)
        close = round(level + (rng.random() - 0.5) * 0.04, 2)
        high = round(max(open_, close) + rng.random() * 0.03, 2)
        low = round(min(open_, close) - rng.random() * 0.03, 2)
        volume = round(800_000 + rng.random() * 9_000_000)
        turnover = volume * (abs(close) + 1.5) * 10
        prices = ",".join(f"{v:.2f}" for v in (open_, high, low, close))
        rows.append(f"{day:%Y/%m/%d},{prices},{volume},{turnover:.2f}")
    rows.append("数据来源:通达信")
    return ("\r\n".join(rows) + "\r\n").encode("gbk")


FILES: dict[str, Callable[[], bytes]] = {
    "ZYXW Historical Data.csv": investing_english,
    "hist-prices-Voorbeeld-Transport.csv": investing_dutch,
    "HistoricalQuotes.csv": nasdaq_2020,
    "abcx.us.txt": stooq_bulk,
    "wierzba.csv": stooq_pl,
    "MIDX30.mst": metastock,
    "CHRIS-CME_ZZ1.csv": quandl_chris,
    "SH#609999.txt": tongdaxin,
}


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in FILES.items():
        path = out / name
        path.write_bytes(build())
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write into")
    for path in write(parser.parse_args().out):
        print(path.name, path.stat().st_size)


if __name__ == "__main__":
    main()
