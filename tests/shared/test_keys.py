"""Object keys and batch ids: how they are made and read back."""

import pytest

from shared.keys import batch_of, is_batch_id, new_batch_id, rejects_key, safe_name, upload_key


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


def test_batch_ids_sort_by_creation_time() -> None:
    first = new_batch_id()
    later = [new_batch_id() for _ in range(50)]
    assert all(first[:10] <= other[:10] for other in later)


def test_upload_and_rejects_keys_read_back_to_their_batch() -> None:
    batch = new_batch_id()
    key = upload_key(batch, 7, "../INFY Historical Data.csv")
    assert key == f"uploads/{batch}/0007_INFY_Historical_Data.csv"
    assert batch_of(key) == batch
    assert rejects_key(key) == f"rejects/{batch}/0007_INFY_Historical_Data.csv"


@pytest.mark.parametrize(
    "key",
    [
        "image.jpg",
        "rejects/b_0000000000000000000000000A/0000_x.csv",
        "uploads/b_0000000000000000000000000A/",
        "uploads/b_0000000000000000000000000A/deeper/x.csv",
        "uploads/not-a-batch/x.csv",
    ],
)
def test_keys_this_project_did_not_make_have_no_batch(key: str) -> None:
    assert batch_of(key) is None
