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


def _rewrite_keeping_size_and_mtime(path, offset: int, length: int) -> None:
    """New bytes at ``offset`` in place, then the old mtime back (as ``touch -r`` does)."""
    import os

    before = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset)
        old = handle.read(length)
        handle.seek(offset)
        handle.write(bytes(b ^ 0xFF for b in old))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_gguf_rewritten_with_its_old_size_and_mtime_is_converted_again(tmp_path, monkeypatch):
    # The converted layer 0 is cached by the file's identity: were that size and mtime alone,
    # the old tensors (and the old model fingerprint) would score the new model's windows.
    import shutil

    monkeypatch.setenv("LONGATTN_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model.gguf"
    shutil.copyfile(resolve_model(None).path, model)
    first = load_layer0(str(model))
    embeddings = next(t for t in gguf.GGUFReader(str(model)).tensors if t.name == "token_embd.weight")
    # Q4_1 blocks: a float16 scale and minimum (4 bytes), then 16 bytes of 4-bit quants
    _rewrite_keeping_size_and_mtime(model, int(embeddings.data_offset) + 4, 16)
    second = load_layer0(str(model))
    assert second.fingerprint != first.fingerprint
    assert not torch.equal(second.embed_tokens[0], first.embed_tokens[0])
    assert torch.equal(second.embed_tokens[1:], first.embed_tokens[1:])


def test_a_tokenizer_rewritten_in_place_is_read_again_by_the_same_process(tmp_path):
    # A long-lived process (a code server evaluating schedules) keeps tokenizers; a
    # tokenizer.json rewritten in place must not be taken for the one it replaced.
    import json

    folder = tmp_path / "model"
    folder.mkdir()
    base = tokenizer_module.load_tokenizer(None).tokenizer
    (folder / "config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    (folder / "tokenizer.json").write_text(base.to_str())
    first = tokenizer_module.load_tokenizer(str(folder))
    assert tokenizer_module.load_tokenizer(str(folder)) is first  # kept while unchanged
    edited = tokenizer_module.Tokenizer.from_str(base.to_str())
    edited.add_tokens(["<longattn-extra>"])
    before = (folder / "tokenizer.json").stat()
    (folder / "tokenizer.json").write_text(edited.to_str())
    import os

    os.utime(folder / "tokenizer.json", ns=(before.st_atime_ns, before.st_mtime_ns))
    second = tokenizer_module.load_tokenizer(str(folder))
    assert second.fingerprint != first.fingerprint
