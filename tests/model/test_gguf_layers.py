"""The embedded GGUF model (SmolLM2, llama) scores a layer above 0 as transformers does."""

from __future__ import annotations

import inspect

import pytest
import torch

from longattn_assets.model.layer0 import load_layer0
from longattn_assets.model.source import resolve_model
from longattn_assets.scoring.scorer import Layer0Scorer

from .tiny_models import eager_statistics


@pytest.fixture(scope="module")
def source():
    return resolve_model("smollm2-135m")


@pytest.fixture(scope="module")
def two_layers(source):
    """transformers' own GGUF loading of the embedded model, truncated to its first two layers."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(source.path.parent), gguf_file=source.path.name, num_hidden_layers=2,
        attn_implementation="eager", dtype=torch.float32,
    ).eval()  # fmt: skip


def test_layer_1_of_the_embedded_model_matches_eager_attention(source, two_layers):
    from longattn_assets.model.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(source)
    window = tokenizer.encode_batch([inspect.getsource(inspect)])[0][500:799]
    weights = load_layer0(source, layer=1)
    score = Layer0Scorer(weights, device="cpu", bos_token_id=tokenizer.bos_token_id).score([window])[0]
    ds, du = eager_statistics(two_layers, [tokenizer.bos_token_id, *window], 1)
    torch.testing.assert_close(torch.from_numpy(score.ds_heads).double(), ds, rtol=1e-4, atol=0)
    torch.testing.assert_close(torch.from_numpy(score.du_heads).double(), du, rtol=1e-4, atol=0)


def test_gguf_layer_1_reads_all_of_block_0_and_the_attention_inputs_of_block_1(source):
    from gguf import GGUFReader

    sizes = {t.name: int(t.n_bytes) for t in GGUFReader(str(source.path)).tensors}
    needed = ["token_embd.weight", *(n for n in sizes if n.startswith("blk.0.")),
              "blk.1.attn_norm.weight", "blk.1.attn_q.weight", "blk.1.attn_k.weight"]  # fmt: skip
    assert len([n for n in needed if n.startswith("blk.0.")]) == 9
    weights = load_layer0(source, layer=1)
    assert weights.bytes_read == sum(sizes[n] for n in needed)
    assert len(weights.lower_layers) == 1 and weights.layer == 1
    assert weights.fingerprint != load_layer0(source).fingerprint
