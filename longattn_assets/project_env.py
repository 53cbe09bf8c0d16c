"""The checkout's ``.env``, read the way the ``dagster`` CLI reads it, for ``longattn`` commands.

``dagster dev``, ``dagster asset materialize`` and ``dagster job execute`` load ``./.env``
over the shell's variables before they open the Dagster instance. The repository's
``.env`` sets ``DAGSTER_HOME`` to the checkout (where ``dagster.yaml`` is) and the data
root to ``./data``; ``longattn demo`` and ``longattn browse`` load the same file the same
way, so the demo, the UI and the CLI see one instance and one data root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dotenv import dotenv_values

ENV_FILE = ".env"


def env_file_values(folder: Path) -> dict[str, str]:
    """The variables ``folder/.env`` sets (``${VAR}`` expanded), as Dagster's CLI reads them."""
    path = folder / ENV_FILE
    if not path.is_file():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


@contextmanager
def project_env(folder: Path | None = None) -> Iterator[dict[str, str]]:
    """Apply ``folder/.env`` (default: the working directory) over ``os.environ`` for a block.

    Like the ``dagster`` CLI, the file wins over the shell's variables; the environment is
    restored afterwards. Yields the variables the file set.
    """
    values = env_file_values(folder or Path.cwd())
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield values
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def dagster_home() -> Path | None:
    """``$DAGSTER_HOME`` as an absolute path, or None when it is not set."""
    value = os.environ.get("DAGSTER_HOME", "").strip()
    return Path(value).expanduser().absolute() if value else None
