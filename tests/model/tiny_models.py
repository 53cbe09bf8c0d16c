"""Small random-weight models of each supported family, saved as sharded safetensors.

Each is built from the family's transformers config class (no download), its attention
sharpened so that the statistics are not trivial, and saved with shards so small that the
scored layer's tensors lie in more than one file. ``eager_statistics`` is the oracle:
per-head ds and du from transformers' own eager attention probabilities of one layer.
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import torch

# Shared by every family: 4 query heads over 2 kv heads, a byte-sized vocabulary.
BASE = {
    "vocab_size": 320,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-6,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "tie_word_embeddings": False,
}
GEMMA_SLIDING_WINDOW = 32


def _longrope_factors(rotary_dim: int) -> dict:
    """Short and long factors of a longrope with 64 original positions of the 256 (factor 4)."""
    half = rotary_dim // 2
    return {
        "factor": 4.0,
        "short_factor": [1.0 + 0.05 * i for i in range(half)],
        "long_factor": [1.0 + 0.6 * i for i in range(half)],
    }


# name -> (model_type, config keywords beyond BASE)
FAMILIES: dict[str, tuple[str, dict]] = {
    # head_dim 32 apart from hidden / heads = 16
    "qwen3": ("qwen3", {"head_dim": 32}),
    # layer 0 and 2 sparse (4 experts, top 2, weights not renormalized), layer 1 dense
    "qwen3_moe": ("qwen3_moe", {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                                "mlp_only_layers": [1], "norm_topk_prob": False}),
    "gemma2": ("gemma2", {
        "head_dim": 16, "query_pre_attn_scalar": 24, "attn_logit_softcapping": 6.0,
        "sliding_window": GEMMA_SLIDING_WINDOW,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
    }),
    "gemma3_text": ("gemma3_text", {
        "head_dim": 16, "query_pre_attn_scalar": 24, "sliding_window": GEMMA_SLIDING_WINDOW,
        "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
        "rope_parameters": {
            "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
    }),
    # fused qkv and gate_up, half the head rotated, longrope beyond 64 positions
    "phi3": ("phi3", {
        "original_max_position_embeddings": 64,
        "rope_parameters": {"rope_type": "longrope", "rope_theta": 10_000.0, "partial_rotary_factor": 0.5,
                            **_longrope_factors(8)},
    }),
    "olmo2": ("olmo2", {}),
    "mixtral": ("mixtral", {"num_local_experts": 4, "num_experts_per_tok": 2}),
    "llama-linear": ("llama", {"rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10_000.0}}),
    # transformers re-derives dynamic NTK frequencies beyond max_position_embeddings (64)
    "llama-dynamic": ("llama", {"max_position_embeddings": 64,
                                "rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10_000.0}}),
    "llama-yarn": ("llama", {"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 10_000.0,
                                                 "original_max_position_embeddings": 64}}),
    "llama-longrope": ("llama", {"rope_parameters": {"rope_type": "longrope", "rope_theta": 10_000.0,
                                                     "original_max_position_embeddings": 64,
                                                     **_longrope_factors(16)}}),
    "llama-llama3": ("llama", {"rope_parameters": {"rope_type": "llama3", "factor": 8.0, "rope_theta": 500_000.0,
                                                   "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                   "original_max_position_embeddings": 64}}),
    # every layer slides over 32 positions: no global layer at all
    "mistral": ("mistral", {"sliding_window": GEMMA_SLIDING_WINDOW}),
}  # fmt: skip


def config_of(name: str):
    from transformers import AutoConfig

    model_type, extra = FAMILIES[name]
    return AutoConfig.for_model(model_type, **(BASE | extra))


def _sharpen(model: torch.nn.Module) -> None:
    """Make attention peaked, so per-head ds and du differ and matter.

    Where q/k norms follow the projections, the norms' weights set the scale (Gemma's are
    stored as w for (1 + w)); elsewhere the projections do.
    """
    generator = torch.Generator().manual_seed(7)
    gemma = "gemma" in model.config.model_type
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("q_norm.weight", "k_norm.weight")):
                center = 1.5 if gemma else 2.5
                param.copy_(center + 0.3 * torch.randn(param.shape, generator=generator))
            elif name.endswith(("q_proj.weight", "k_proj.weight", "qkv_proj.weight")):
                param.mul_(math.sqrt(40.0))
            elif name.endswith(("layernorm.weight",)) and gemma:
                param.copy_(0.2 * torch.randn(param.shape, generator=generator))


def save_model(model: torch.nn.Module, folder: Path) -> Path:
    """Save in shards of at most 24 KB: each of a layer's tensors in its own file or two."""
    model.save_pretrained(folder, max_shard_size="24KB")
    return folder


def build(name: str, folder: Path, seed: int = 0) -> Path:
    """A random ``name`` model (FAMILIES) as sharded safetensors in ``folder``."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config_of(name), attn_implementation="eager")
    _sharpen(model)
    return save_model(model.eval(), folder)


def build_gemma3_multimodal(folder: Path, seed: int = 0) -> Path:
    """A Gemma 3 image-text checkpoint (model_type gemma3) with a tiny vision tower."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    torch.manual_seed(seed)
    _, text = FAMILIES["gemma3_text"]
    config = Gemma3Config(
        text_config=BASE | text,
        vision_config={"hidden_size": 32, "intermediate_size": 32, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 28, "patch_size": 14},
        mm_tokens_per_image=4,
    )  # fmt: skip
    model = Gemma3ForConditionalGeneration(config)
    _sharpen(model)
    return save_model(model.eval(), folder)


def load_eager(folder: Path) -> torch.nn.Module:
    """transformers' own model of ``folder`` with eager attention, in float32."""
    from transformers import AutoConfig, AutoModelForCausalLM, Gemma3ForConditionalGeneration

    cls = AutoModelForCausalLM
    if AutoConfig.from_pretrained(folder).model_type == "gemma3":
        cls = Gemma3ForConditionalGeneration
    return cls.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()


def eager_statistics(model: torch.nn.Module, token_ids: list[int], layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head ds and du of DESIGN 1.2 from transformers' eager attention probabilities of ``layer``."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor([token_ids]), output_attentions=True)
    probs = out.attentions[layer][0].double()  # [Hq, L, L]
    length = probs.shape[-1]
    offset = length - 3 * (length // 4)
    masked = torch.zeros_like(probs)
    for r in range(offset, length):
        masked[:, r, : r - offset + 1] = probs[:, r, : r - offset + 1]
    ds = masked.sum(dim=(1, 2)) / length
    du = masked.reshape(probs.shape[0], -1).var(dim=-1, unbiased=True)
    return ds, du


def text_window(length: int, start: int = 0) -> list[int]:
    """``length`` token ids of real text: bytes of the stdlib's inspect module (vocabulary 320)."""
    data = inspect.getsource(inspect).encode()[start : start + length]
    assert len(data) == length
    return list(data)


def shards_of(folder: Path, names: list[str]) -> set[str]:
    """The shard files that hold ``names``."""
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    return {weight_map[name] for name in names}


def weight_map(folder: Path) -> dict[str, str]:
    return json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
