import pytest

from shared.keys import is_batch_id, new_batch_id, safe_name
from shared.settings import Settings


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("AAPL.csv", "AAPL.csv"),
        ("INFY Historical Data.csv", "INFY_Historical_Data.csv"),
        ("../../etc/passwd.csv", "passwd.csv"),
        ("/abs/x.csv", "x.csv"),
        ("a\\b\\c.txt", "c.txt"),
        ("Zürich Öl.csv", "Zurich_Ol.csv"),
        ("\u202eevil\u202c.csv", "evil.csv"),
        ("....csv", "file.csv"),
        ('it\'s "q";--.csv', "it_s__q__--.csv"),
        ("a\r\nb.csv", "a__b.csv"),
    ],
)
def test_safe_names_never_leave_the_batch_folder(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def test_long_names_are_cut() -> None:
    assert len(safe_name("x" * 1000 + ".csv")) <= 100


def test_batch_ids_are_unique_and_well_formed() -> None:
    ids = {new_batch_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(is_batch_id(i) for i in ids)
    assert not is_batch_id("b_../../x") and not is_batch_id("")


def test_comma_separated_settings() -> None:
    settings = Settings(
        database_url="x",
        redis_url="x",
        s3_endpoint="http://h:1",
        api_tokens="a, b,,",
        allowed_extensions="CSV,.Txt",
    )
    assert settings.api_tokens == ("a", "b")
    assert settings.allowed_extensions == (".csv", ".txt")
    assert settings.presign_endpoint == "http://h:1"


def test_settings_fail_fast_on_bad_endpoint() -> None:
    with pytest.raises(ValueError, match="http"):
        Settings(database_url="x", redis_url="x", s3_endpoint="minio:9000")
