"""The scoring model's tokenizer, loaded fast, with a fingerprint that ties windows to it.

GGUF files carry their vocabulary; converting it with transformers takes seconds, so the
converted ``tokenizer.json`` is cached under the cache dir, keyed by the file's identity.

Documents are text, not chat templates: a string such as ``<|im_start|>``, ``<s>`` or
``<|begin_of_text|>`` inside a document is tokenized as the characters it is made of,
never as the special token (``encode_special_tokens``), whatever the tokenizer family.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tokenizers import Encoding, Tokenizer

from .. import settings
from ..storage import write_text
from .source import ModelFileError, ModelSource, file_identity, resolve_model, source_identity


@dataclass(frozen=True)
class ModelTokenizer:
    tokenizer: Tokenizer
    fingerprint: str
    bos_token_id: int | None
    eos_token_id: int | None

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)]

    def encode_with_offsets(self, texts: list[str]) -> list[Encoding]:
        """Encodings with each token's character offsets into its text."""
        return self.tokenizer.encode_batch(texts, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)


def fingerprint_of(tokenizer: Tokenizer) -> str:
    """A short hash of the tokenizer's full definition (vocabulary, merges, normalizers) and
    of how it reads special-token strings, which ``to_str`` leaves out."""
    definition = {
        "tokenizer": json.loads(tokenizer.to_str()),
        "encode_special_tokens": tokenizer.encode_special_tokens,
    }
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
    return "tok-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _convert_with_transformers(source: ModelSource) -> tuple[str, dict]:
    from transformers import AutoTokenizer

    try:
        if source.kind == "gguf":
            tok = AutoTokenizer.from_pretrained(str(source.path.parent), gguf_file=source.path.name)
        else:
            tok = AutoTokenizer.from_pretrained(str(source.path), trust_remote_code=False)
    except Exception as exc:  # a damaged file surfaces as numpy, struct or transformers errors
        raise ModelFileError(f"{source.path} is not a readable model file (its tokenizer: {exc})") from exc
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"tokenizer of {source.spec} has no fast (tokenizers) backend")
    return backend.to_str(), {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}


def _special_ids_from_config(folder: Path) -> dict:
    ids: dict = {"bos_token_id": None, "eos_token_id": None}
    for name in ("generation_config.json", "config.json"):
        file = folder / name
        if file.is_file():
            data = json.loads(file.read_text())
            for key in ids:
                if ids[key] is None and isinstance(data.get(key), int):
                    ids[key] = data[key]
    return ids


@lru_cache(maxsize=8)
def _load(source: ModelSource, identity: str) -> ModelTokenizer:
    """``identity`` (:func:`source_identity`) is part of the key: a long-lived process (a code
    server evaluating schedules) sees a tokenizer file rewritten in place."""
    if source.kind == "hf" and (source.path / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_file(str(source.path / "tokenizer.json"))
        special = _special_ids_from_config(source.path)
    else:
        cached = settings.cache_dir() / "tokenizers" / file_identity(source.path)
        json_path, meta_path = cached / "tokenizer.json", cached / "special_tokens.json"
        if not (json_path.is_file() and meta_path.is_file()):
            text, special = _convert_with_transformers(source)
            write_text(text, json_path)
            write_text(json.dumps(special), meta_path)
        tokenizer = Tokenizer.from_file(str(json_path))
        special = json.loads(meta_path.read_text())
    return text_tokenizer(tokenizer, special)


def text_tokenizer(tokenizer: Tokenizer, special: dict) -> ModelTokenizer:
    """Wrap a tokenizer so that special-token strings in documents stay ordinary text."""
    tokenizer.encode_special_tokens = True
    return ModelTokenizer(
        tokenizer=tokenizer,
        fingerprint=fingerprint_of(tokenizer),
        bos_token_id=special.get("bos_token_id"),
        eos_token_id=special.get("eos_token_id"),
    )


def load_tokenizer(model: str | ModelSource | None = None) -> ModelTokenizer:
    """The tokenizer of ``model`` (a spec or a resolved source); cached per process."""
    source = model if isinstance(model, ModelSource) else resolve_model(model)
    return _load(source, source_identity(source))
