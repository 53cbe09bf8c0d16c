"""Paths and defaults, read from the environment in one place.

Every knob a deployment sets lives here as an environment variable with a default that
works on a laptop with the bundled sample corpus and the embedded SmolLM2 model. Each
value is checked by validation.py, so a bad one fails with one line naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .validation import check_variable

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_CORPUS_DIR = PACKAGE_DIR / "data" / "sample"

DEFAULT_CATEGORIES = ("arxiv", "book", "code")
DEFAULT_NUM_SHARDS = 4
DEFAULT_WINDOW_SIZE = 32768
DEMO_WINDOW_SIZE = 2048
DEFAULT_MODEL = "smollm2-135m"
DEFAULT_INGEST_MEMORY = "1GB"


def _raw(name: str) -> tuple[str, str] | None:
    """(variable, value) of ``NAME`` if set, else of ``NAME_DEFAULT`` (what the repository's
    .env provides), else None.

    Dagster's CLI loads ``.env`` over the shell's variables; keeping the file's values under
    ``*_DEFAULT`` names lets a variable exported in the shell still win.
    """
    for key in (name, f"{name}_DEFAULT"):
        value = os.environ.get(key, "").strip()
        if value:
            return key, value
    return None


def _env(name: str, default: str) -> str:
    found = _raw(name)
    return found[1] if found else default


def checked_env(name: str, rule: str, default: Any) -> Any:
    """The variable's value checked by ``rule`` (labelled with the variable), else the value of
    ``NAME_DEFAULT``, else ``default``. A variable set to nothing is checked as given
    (``LONGATTN_CATEGORIES=`` is an error, not the default categories)."""
    for key in (name, f"{name}_DEFAULT"):
        if key in os.environ:
            return check_variable(key, rule, default)
    return default


def data_root() -> Path:
    return Path(_env("LONGATTN_DATA_ROOT", "data")).expanduser().absolute()


def input_dir() -> str:
    """Folder or URL (``s3://``, ``gs://``, ``hf://datasets/``) with one sub-folder of input
    files per category (default: the bundled sample)."""
    from .corpus.input_file import location

    return location(_env("LONGATTN_INPUT_DIR", str(SAMPLE_CORPUS_DIR)))


def text_column() -> str:
    """The column holding a row's text; empty: ``content``, else ``text``."""
    return _env("LONGATTN_TEXT_COLUMN", "")


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "longattn"
    return Path(_env("LONGATTN_CACHE_DIR", str(default))).expanduser().absolute()


def categories() -> list[str]:
    return checked_env("LONGATTN_CATEGORIES", "categories", list(DEFAULT_CATEGORIES))


def num_shards() -> int:
    return checked_env("LONGATTN_NUM_SHARDS", "num_shards", DEFAULT_NUM_SHARDS)


def window_size() -> int:
    return checked_env("LONGATTN_WINDOW_SIZE", "window_size", DEFAULT_WINDOW_SIZE)


def demo_window_size() -> int:
    """The configured window size, else the demo's (short windows keep the demo fast)."""
    return checked_env("LONGATTN_WINDOW_SIZE", "window_size", DEMO_WINDOW_SIZE)


def model_spec() -> str:
    return checked_env("LONGATTN_MODEL", "model", DEFAULT_MODEL)


def layer() -> int:
    """The decoder layer whose attention is scored (0: the paper's first layer; README, "Models")."""
    return checked_env("LONGATTN_LAYER", "layer", 0)


def device() -> str:
    return checked_env("LONGATTN_DEVICE", "device", "auto")


def ingest_memory() -> str:
    """Memory budget of raw_corpus ingest, all its workers together (e.g. ``1GB``, ``512MB``)."""
    return checked_env("LONGATTN_INGEST_MEMORY", "memory_budget", DEFAULT_INGEST_MEMORY)


def ingest_workers() -> int:
    """Processes that read input files in parallel (default: the CPUs this process may use)."""
    return checked_env("LONGATTN_INGEST_WORKERS", "workers", len(os.sched_getaffinity(0)))
