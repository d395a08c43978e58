"""The admin page's static files (web/), served by presign at GET …/ui/ without a token: the
page asks for the token itself and keeps it in the tab (sessionStorage), never in a URL."""

import json
from pathlib import Path

from .errors import NotFoundError
from .settings import Settings

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page talks to status and the object store on other origins, hence connect-src.
    "Content-Security-Policy": "default-src 'self'; connect-src *; img-src 'self' data:;"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


def asset(web_dir: Path, name: str, settings: Settings) -> tuple[bytes, dict[str, str]]:
    """A file of web_dir by its plain name (index.html for none), or config.json: where the
    page finds status. Anything else is NOT_FOUND."""
    name = name or "index.html"
    if name == "config.json":
        config = {
            "statusUrl": settings.status_public_url,
            "limits": {
                "maxFileBytes": settings.max_file_bytes,
                "maxFiles": settings.max_files_per_batch,
                "extensions": list(settings.allowed_extensions),
            },
        }
        return json.dumps(config).encode(), {**HEADERS, "Content-Type": "application/json"}
    path = web_dir / name
    kind = TYPES.get(path.suffix)
    if kind is None or name.startswith(".") or "/" in name or "\\" in name or not path.is_file():
        raise NotFoundError("NOT_FOUND", f"No page file {name[:80]!r}.")
    return path.read_bytes(), {**HEADERS, "Content-Type": kind}
