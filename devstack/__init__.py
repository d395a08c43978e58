"""The tools around the library: local services, the functions as real processes, one API
client, the webhook relay, deterministic test data, the demo batch and the benchmark.

Used by `scripts/dev`, `scripts/bench` and the end-to-end tests; it runs from a checkout of the
repository (the functions are started from their source files under `functions/`).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"
