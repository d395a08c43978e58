import pytest

from shared.errors import FileRejectedError
from shared.layout import detect, normalise, ticker_from_name


@pytest.mark.parametrize(("name", "ticker"), [
    ("AAPL.csv", "AAPL"), ("aapl_daily.csv", "AAPL"), ("INFY Historical Data.csv", "INFY"),
    ("nvda-2014.txt", "NVDA"), ("BTC-USD.csv", "BTC-USD"), ("aapl.us.txt", "AAPL.US"),
    ("SH#600000.txt", None), ("=cmd.csv", None), ("a" * 30 + ".csv", None),
])
def test_ticker_from_file_name(name: str, ticker: str | None) -> None:
    assert ticker_from_name(name) == ticker


@pytest.mark.parametrize(("raw", "name"), [
    ("<DATE>", "date"), ("Open Interest", "openinterest"), ("Vol.", "vol"),
    ("Trade_Date", "tradedate"), (" Close/Last", "close/last"), ('"Date"', "date"),
])
def test_header_names_are_normalised(raw: str, name: str) -> None:
    assert normalise(raw) == name


def test_canonical_header_in_any_case() -> None:
    layout = detect(b"DATE,ticker,Open,HIGH,low,Close,Volume,OpenInterest\n"
                    b"2024-01-02,A,1,2,1,2,3,4\n")
    assert layout.delimiter == ","
    assert layout.columns == {"date": 0, "ticker": 1, "open": 2, "high": 3, "low": 4, "close": 5,
                              "volume": 6, "open_interest": 7}


def test_close_prefers_close_over_price_and_last() -> None:
    layout = detect(b"Date;Price;Last;Open;High;Low;Close\n")
    assert layout.delimiter == ";" and layout.columns["close"] == 6


def test_bom_and_blank_lines_before_header() -> None:
    layout = detect(b"\xef\xbb\xbf\n\nDate\tOpen\tHigh\tLow\tClose\n")
    assert (layout.delimiter, layout.header_line) == ("\t", 2)


@pytest.mark.parametrize(("head", "cause"), [
    (b"", "empty"), (b"PK\x03\x04\x00\x00zip", "not text"), (b"\n\n  \n", "no header"),
    (b"Date,Open,High,Low\n", "close"), (b"\xff\xfe\xfd garbage \xfe" * 10, "not UTF-8"),
])
def test_unusable_files_name_their_cause(head: bytes, cause: str) -> None:
    with pytest.raises(FileRejectedError, match=cause):
        detect(head)
