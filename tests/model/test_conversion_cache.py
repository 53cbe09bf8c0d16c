"""Converted forms of the embedded GGUF model are cached, so later runs start fast."""

import gguf
import pytest
import torch

from longattn_assets.model import tokenizer as tokenizer_module
from longattn_assets.model.layer0 import load_layer0
from longattn_assets.model.source import resolve_model


def test_second_layer0_load_reads_the_cache_not_the_gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("LONGATTN_CACHE_DIR", str(tmp_path))
    first = load_layer0(None)
    assert list((tmp_path / "layer0").glob("*/layer0.safetensors"))

    def refuse(*args, **kwargs):
        raise AssertionError("the GGUF file was parsed again")

    monkeypatch.setattr(gguf, "GGUFReader", refuse)
    second = load_layer0(None)
    assert second.fingerprint == first.fingerprint
    for name in ("embed_tokens", "input_layernorm", "q_proj", "k_proj"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert (second.rope_theta, second.num_heads, second.num_kv_heads) == (100000.0, 9, 3)


def test_damaged_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("LONGATTN_CACHE_DIR", str(tmp_path))
    first = load_layer0(None)
    cached = next((tmp_path / "layer0").glob("*/layer0.safetensors"))
    cached.write_bytes(b"not a safetensors file")
    assert load_layer0(None).fingerprint == first.fingerprint


def test_tokenizer_conversion_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LONGATTN_CACHE_DIR", str(tmp_path))
    tokenizer_module._load.cache_clear()
    source = resolve_model(None)
    first = tokenizer_module.load_tokenizer(source)
    tokenizer_module._load.cache_clear()

    def refuse(*args, **kwargs):
        raise AssertionError("the tokenizer was converted again")

    monkeypatch.setattr(tokenizer_module, "_convert_with_transformers", refuse)
    second = tokenizer_module.load_tokenizer(source)
    assert second.fingerprint == first.fingerprint and second.bos_token_id == first.bos_token_id
    tokenizer_module._load.cache_clear()


@pytest.mark.parametrize(
    "spec", ["/nonexistent/model.gguf", "/nonexistent/folder", "no-such-org/no-such-model"]
)
def test_missing_models_fail_with_the_path_named(spec):
    from longattn_assets.model.source import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="no-such|nonexistent"):
        resolve_model(spec)
