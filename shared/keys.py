"""Object keys and batch ids: the only place that knows how they are made and read.

uploads/<batchId>/<NNNN>_<safe name>   an uploaded file (NNNN: its position in the batch)
rejects/<batchId>/<NNNN>_<safe name>   the rejected rows of that file
rejects/<batchId>/<NNNN>_<safe name>.warnings.csv   its plausibility warnings
"""

import secrets
import time
import unicodedata
from pathlib import PurePosixPath

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BATCH_ID_LENGTH = 28  # "b_" + 26 characters: 48 bits of time, 80 random bits
UPLOADS = "uploads/"
REJECTS = "rejects/"
SAFE_STEM_CHARS = 80


def new_batch_id() -> str:
    """Sortable by creation time and unguessable (80 random bits), like a ULID."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "b_" + "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def is_batch_id(value: str) -> bool:
    return (
        len(value) == BATCH_ID_LENGTH
        and value.startswith("b_")
        and all(c in CROCKFORD for c in value[2:])
    )


def upload_key(batch_id: str, position: int, file_name: str) -> str:
    return f"{UPLOADS}{batch_id}/{position:04d}_{safe_name(file_name)}"


def rejects_key(object_key: str) -> str:
    return REJECTS + object_key.removeprefix(UPLOADS)


def warnings_key(object_key: str) -> str:
    return rejects_key(object_key) + ".warnings.csv"


def batch_of(key: str) -> str | None:
    """The batch an uploaded object belongs to, or None for any key this project did not make
    (outside uploads/<batchId>/, another depth, a batch id of another shape)."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] + "/" != UPLOADS or not parts[2] or not is_batch_id(parts[1]):
        return None
    return parts[1]


def safe_name(name: str) -> str:
    """A key segment made only of [A-Za-z0-9._-] that keeps the extension; never a path."""
    base = PurePosixPath(name.replace("\\", "/"))
    stem, ext = _ascii_word(base.stem), _ascii_word(base.suffix)
    return (stem[:SAFE_STEM_CHARS] or "file") + (f".{ext[:10]}" if ext else "")


def _ascii_word(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in ascii_text).strip("._")
