import pytest

from shared.errors import FileRejectedError
from shared.layout import detect, normalise, ticker_from_name


@pytest.mark.parametrize(
    ("name", "ticker"),
    [
        ("AAPL.csv", "AAPL"),
        ("aapl_daily.csv", "AAPL"),
        ("INFY Historical Data.csv", "INFY"),
        ("nvda-2014.txt", "NVDA"),
        ("BTC-USD.csv", "BTC-USD"),
        ("aapl.us.txt", "AAPL.US"),
        ("SH#600000.txt", None),
        ("=cmd.csv", None),
        ("a" * 30 + ".csv", None),
    ],
)
def test_ticker_from_file_name(name: str, ticker: str | None) -> None:
    assert ticker_from_name(name) == ticker


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("<DATE>", "date"),
        ("Open Interest", "openinterest"),
        ("Vol.", "vol"),
        ("Trade_Date", "tradedate"),
        (" Close/Last", "close/last"),
        ('"Date"', "date"),
    ],
)
def test_header_names_are_normalised(raw: str, name: str) -> None:
    assert normalise(raw) == name


def test_canonical_header_in_any_case() -> None:
    layout = detect(
        b"DATE,ticker,Open,HIGH,low,Close,Volume,OpenInterest\n2024-01-02,A,1,2,1,2,3,4\n"
    )
    assert layout.delimiter == ","
    assert layout.columns == {
        "date": 0,
        "ticker": 1,
        "open": 2,
        "high": 3,
        "low": 4,
        "close": 5,
        "volume": 6,
        "open_interest": 7,
    }


def test_close_prefers_close_over_price_and_last() -> None:
    layout = detect(b"Date;Price;Last;Open;High;Low;Close\n")
    assert layout.delimiter == ";" and layout.columns["close"] == 6


def test_bom_and_blank_lines_before_header() -> None:
    layout = detect(b"\xef\xbb\xbf\n\nDate\tOpen\tHigh\tLow\tClose\n")
    assert (layout.delimiter, layout.header_line) == ("\t", 2)


@pytest.mark.parametrize(
    ("head", "cause"),
    [
        (b"", "empty"),
        (b"PK\x03\x04\x00\x00zip", "not text"),
        (b"\n\n  \n", "no header"),
        (b"Date,Open,High,Low\n", "close"),
        (b"\x81\x8d\x01\x02 garbage \x03\x04" * 10, "not text"),
        (b"Title only\nDate,Open\n", "high, low, close"),
    ],
)
def test_unusable_files_name_their_cause(head: bytes, cause: str) -> None:
    with pytest.raises(FileRejectedError, match=cause):
        detect(head)


@pytest.mark.parametrize(
    ("header", "close"),
    [
        ("Date,Open,High,Low,Close,Adj Close", 4),
        ("Date,Adj Close,Open,High,Low,Close", 5),
        ("Date,Open,High,Low,Last,Change,Settle,Volume,Open Interest", 6),
        ("Datum,Laatste,Open,Hoog,Laag,Vol.,+/- %", 1),
        ("Data,Otwarcie,Najwyzszy,Najnizszy,Zamkniecie,Wolumen", 4),
        ("<TICKER>,<DTYYYYMMDD>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>", 5),
    ],
)
def test_synonyms_and_localised_headers(header: str, close: int) -> None:
    layout = detect(header.encode() + b"\n")
    assert layout.columns["close"] == close and set(layout.columns) >= {"date", "open", "high"}


def test_adj_close_alone_is_no_close() -> None:
    with pytest.raises(FileRejectedError, match="close"):
        detect(b"Date,Open,High,Low,Adj Close\n")


def test_unknown_and_empty_named_columns_are_ignored() -> None:
    layout = detect(b",date,open,high,low,close,Change %,volume\n")
    assert layout.columns == {"date": 1, "open": 2, "high": 3, "low": 4, "close": 5, "volume": 7}


def test_title_lines_are_skipped_and_rows_may_use_another_delimiter() -> None:
    head = (
        "600000 浦发银行 日线 前复权\r\n      日期\t    开盘\t    最高\t    最低\t    收盘"
        "\t    成交量\r\n2000/01/04,0.72,0.84,0.68,0.81,4496000\r\n"
    ).encode("gbk")
    layout = detect(head)
    assert (layout.encoding, layout.text_encoding) == ("utf-8", "gbk")
    assert (layout.delimiter, layout.header_line, layout.names[0]) == (",", 1, "日期")


@pytest.mark.parametrize(
    ("head", "encoding", "text_encoding"),
    [
        ("Date,Open,High,Low,Close\n".encode("utf-16"), "utf-16", None),
        ("Datum;Eröffnung;Hoch;Tief;Schluss\n".encode("cp1252"), "utf-8", "cp1252"),
        (b"\xfe\xff" + "Date,Open,High,Low,Close\n".encode("utf-16-be"), "utf-8", "utf-16"),
        (b"\xef\xbb\xbfDate,Open,High,Low,Close\n", "utf-8", None),
    ],
)
def test_encodings(head: bytes, encoding: str, text_encoding: str | None) -> None:
    layout = detect(head)
    assert (layout.encoding, layout.text_encoding) == (encoding, text_encoding)
    assert layout.columns["close"] == 4


def test_comma_space_delimiter() -> None:
    layout = detect(
        b"Date, Close/Last, Volume, Open, High, Low\r\n02/28/2020, $273.36, 1, $2, $3, $1\r\n"
    )
    assert layout.delimiter == "," and layout.columns == {
        "date": 0,
        "close": 1,
        "volume": 2,
        "open": 3,
        "high": 4,
        "low": 5,
    }
