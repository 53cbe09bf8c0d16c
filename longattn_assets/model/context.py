"""How many positions a model was trained on: the longest sequence its scores mean something for.

DESIGN 1.2: a window's scores mean something only within the context length the model was
trained on, so settings check a window (plus its BOS) against this number before any work.
"""

from __future__ import annotations

import json

from .source import ModelFileError, ModelSource


def trained_positions(source: ModelSource) -> int | None:
    """``max_position_embeddings`` of a model folder's config (of its text model for a
    multimodal config), or the GGUF file's ``context_length``; None when the model does not say."""
    if source.kind == "gguf":
        from .layer0 import load_layer0  # its metadata, from the layer-0 cache once converted

        return load_layer0(source.spec).max_position_embeddings
    path = source.path / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} cannot be read as JSON: {exc}") from exc
    value = config.get("text_config", config).get("max_position_embeddings")
    return int(value) if value else None
