"""Real models and real text for the scorer tests, each built once per session."""

import inspect
import json
import math

import pytest
import torch

from longattn_assets.model.source import ModelSource, resolve_model


def attention_oracle(model, token_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head ds and du from transformers' own eager layer-0 attention probabilities."""
    with torch.no_grad():
        out = model(torch.tensor([token_ids]), output_attentions=True)
    probs = out.attentions[0][0].double()  # [Hq, L, L]
    length = probs.shape[-1]
    offset = length - 3 * (length // 4)
    masked = torch.zeros_like(probs)
    for r in range(offset, length):
        masked[:, r, : r - offset + 1] = probs[:, r, : r - offset + 1]
    ds = masked.sum(dim=(1, 2)) / length
    du = masked.reshape(probs.shape[0], -1).var(dim=-1, unbiased=True)
    return ds, du


@pytest.fixture(scope="session")
def smollm2_source() -> ModelSource:
    return resolve_model("smollm2-135m")


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_source):
    from longattn_assets.model.tokenizer import load_tokenizer

    return load_tokenizer(smollm2_source)


@pytest.fixture(scope="session")
def smollm2_weights(smollm2_source):
    from longattn_assets.model.layer0 import load_layer0

    return load_layer0(smollm2_source)


@pytest.fixture(scope="session")
def text_ids(smollm2_tokenizer) -> list[int]:
    """Real text: the source of the stdlib's inspect module, tokenized by SmolLM2."""
    return smollm2_tokenizer.encode_batch([inspect.getsource(inspect)])[0]


@pytest.fixture(scope="session")
def smollm2_hf_model(smollm2_source):
    """transformers' own GGUF loading of the embedded model, truncated to its first layer."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(smollm2_source.path.parent),
        gguf_file=smollm2_source.path.name,
        num_hidden_layers=1,
        attn_implementation="eager",
        dtype=torch.float32,
    ).eval()


LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 256,
}


@pytest.fixture(scope="session")
def sharded_llama_dir(tmp_path_factory):
    """A random GQA Llama with llama3 rope scaling, saved as several safetensors shards."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        rope_parameters=dict(LLAMA3_ROPE),
        tie_word_embeddings=False,
        bos_token_id=1,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # sharpen layer 0's attention so the statistics are not trivial
        attn = model.model.layers[0].self_attn
        attn.q_proj.weight.mul_(math.sqrt(40.0))
        attn.k_proj.weight.mul_(math.sqrt(40.0))
    folder = tmp_path_factory.mktemp("sharded_llama")
    model.save_pretrained(folder, max_shard_size="2MB")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 3
    return folder
