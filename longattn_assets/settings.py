"""Paths and defaults, read from the environment in one place.

Every knob a deployment sets lives here as an environment variable with a default that
works on a laptop with the bundled sample corpus and the embedded SmolLM2 model.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_CORPUS_DIR = PACKAGE_DIR / "data" / "sample"

DEFAULT_CATEGORIES = ("arxiv", "book", "code")
DEFAULT_NUM_SHARDS = 4
DEFAULT_WINDOW_SIZE = 32768
DEMO_WINDOW_SIZE = 2048
DEFAULT_MODEL = "smollm2-135m"
DEFAULT_INGEST_MEMORY = "1GB"


def _env(name: str, default: str) -> str:
    """``NAME`` if set, else ``NAME_DEFAULT`` (what the repository's .env provides), else ``default``.

    Dagster's CLI loads ``.env`` over the shell's variables; keeping the file's values under
    ``*_DEFAULT`` names lets a variable exported in the shell still win.
    """
    for key in (name, f"{name}_DEFAULT"):
        value = os.environ.get(key, "").strip()
        if value:
            return value
    return default


def data_root() -> Path:
    return Path(_env("LONGATTN_DATA_ROOT", "data")).expanduser().absolute()


def input_dir() -> Path:
    """Folder with one sub-folder of input files per category (default: the bundled sample)."""
    return Path(_env("LONGATTN_INPUT_DIR", str(SAMPLE_CORPUS_DIR))).expanduser().absolute()


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "longattn"
    return Path(_env("LONGATTN_CACHE_DIR", str(default))).expanduser().absolute()


def categories() -> list[str]:
    raw = _env("LONGATTN_CATEGORIES", ",".join(DEFAULT_CATEGORIES))
    return [c.strip() for c in raw.split(",") if c.strip()]


def num_shards() -> int:
    return int(_env("LONGATTN_NUM_SHARDS", str(DEFAULT_NUM_SHARDS)))


def window_size() -> int:
    return int(_env("LONGATTN_WINDOW_SIZE", str(DEFAULT_WINDOW_SIZE)))


def model_spec() -> str:
    return _env("LONGATTN_MODEL", DEFAULT_MODEL)


def device() -> str:
    return _env("LONGATTN_DEVICE", "auto")


def ingest_memory() -> str:
    """Memory budget of raw_corpus ingest, all its workers together (e.g. ``1GB``, ``512MB``)."""
    return _env("LONGATTN_INGEST_MEMORY", DEFAULT_INGEST_MEMORY)


def ingest_workers() -> int:
    """Processes that read input files in parallel (default: the CPUs this process may use)."""
    return int(_env("LONGATTN_INGEST_WORKERS", str(len(os.sched_getaffinity(0)))))
