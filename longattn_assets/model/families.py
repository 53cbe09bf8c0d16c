"""What a model family computes up to the attention of the scored layer, read from its config.

A :class:`Family` says which tensors of a checkpoint the scorer reads and which transforms
turn token ids into that layer's queries and keys: embedding scale, the decoder layers
below the scored one (their norms, attention, MLP or experts), the scored layer's input
norm, fused or separate q/k projections, q/k RMSNorm per head or over the projection,
RoPE (per layer type, partial), the softmax scale and logit soft-capping. Everything
follows transformers' eager implementation of each ``model_type`` (README, "Models").

config.json is parsed by transformers' own config class for its ``model_type`` (never with
``trust_remote_code``), so defaults, legacy keys (``rope_scaling``, Gemma 3's
``rope_local_base_freq`` and ``sliding_window_pattern``, Phi-3's top-level
``original_max_position_embeddings``) and the ``layer_types`` list mean exactly what they
mean when the model runs. A feature the scorer does not implement is refused with one line
naming it, never scored approximately.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..validation import InvalidSetting, rope_parameters_problem
from .source import ModelFileError

# Decoder layers: pre-norm (Llama and kin), sandwich norms (Gemma 2/3), post-norm (OLMo 2).
# Role -> the norm's module name inside a layer.
_PRE_NORMS = {"pre_attention": "input_layernorm", "pre_mlp": "post_attention_layernorm"}
_SANDWICH_NORMS = {
    "pre_attention": "input_layernorm",
    "post_attention": "post_attention_layernorm",
    "pre_mlp": "pre_feedforward_layernorm",
    "post_mlp": "post_feedforward_layernorm",
}
_POST_NORMS = {"post_attention": "post_attention_layernorm", "post_mlp": "post_feedforward_layernorm"}

# model_type -> (norms, q/k norm scope, fused qkv and gate/up, experts module)
_FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {"norms": _PRE_NORMS},
    "mistral": {"norms": _PRE_NORMS},
    "qwen2": {"norms": _PRE_NORMS},
    "mixtral": {"norms": _PRE_NORMS, "experts": "mixtral"},
    "qwen3": {"norms": _PRE_NORMS, "qk_norm": "head"},
    "qwen3_moe": {"norms": _PRE_NORMS, "qk_norm": "head", "experts": "qwen3_moe"},
    "phi3": {"norms": _PRE_NORMS, "fused": True},
    "olmo2": {"norms": _POST_NORMS, "qk_norm": "projection"},
    "gemma2": {"norms": _SANDWICH_NORMS, "gemma": True},
    "gemma3_text": {"norms": _SANDWICH_NORMS, "gemma": True, "qk_norm": "head"},
    "gemma3": {"norms": _SANDWICH_NORMS, "gemma": True, "qk_norm": "head"},  # its text part
}
SUPPORTED_MODEL_TYPES = tuple(sorted(_FAMILIES))

# Model types people ask about, and what in them the scorer does not implement.
_UNSUPPORTED_FEATURES = {
    "deepseek_v2": "multi-head latent attention (MLA)",
    "deepseek_v3": "multi-head latent attention (MLA)",
    "kimi_k2": "multi-head latent attention (MLA)",
    "gpt_oss": "attention sinks",
    "llama4": "chunked attention and layers without RoPE",
    "gemma3n": "per-layer embeddings and KV sharing",
    "qwen3_next": "linear-attention (Gated DeltaNet) layers",
}

# Experts modules: router name, per-expert (gate, up, down) names.
_EXPERTS = {
    "mixtral": ("block_sparse_moe.gate", "block_sparse_moe.experts.{e}.", ("w1", "w3", "w2")),
    "qwen3_moe": ("mlp.gate", "mlp.experts.{e}.", ("gate_proj", "up_proj", "down_proj")),
}
ACTIVATIONS = ("silu", "gelu_pytorch_tanh")
# Attention tensors a layer may hold beside the ones a family reads; anything else is a
# feature the scorer does not implement (e.g. gpt-oss's learned ``sinks``).
_IGNORED_ATTENTION = ("rotary_emb.",)
_ATTENTION_NAMES = ("q_proj.", "k_proj.", "v_proj.", "o_proj.", "qkv_proj.", "q_norm.", "k_norm.")


class LocalLayerError(ValueError):
    """Windows longer than the scored layer's sliding window (the local/global rule); one line."""


@dataclass(frozen=True)
class LayerAttention:
    """How one decoder layer attends: how far back, and with which rotary embedding."""

    index: int
    sliding_window: int | None  # keys at most this many positions back (itself included)
    rope_theta: float
    rope_scaling: dict | None  # None: the default rope

    def sees_whole(self, length: int) -> bool:
        """True when a sequence of ``length`` tokens fits the layer's window (global attention)."""
        return self.sliding_window is None or length <= self.sliding_window


@dataclass(frozen=True)
class Family:
    """Everything about a checkpoint's architecture the scorer needs, for one chosen layer."""

    model_type: str
    layer: int  # the scored layer
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    max_position_embeddings: int
    norms: Mapping[str, str]  # role -> module name in a layer
    layers: tuple[LayerAttention, ...]  # every layer of the model
    qk_norm: str | None = None  # "head": RMSNorm over head_dim; "projection": over Hq * D
    fused: bool = False  # qkv_proj and gate_up_proj (Phi-3)
    gemma: bool = False  # sqrt(hidden) embedding scale, RMSNorm with (1 + weight)
    softmax_scale: float | None = None  # None: 1 / sqrt(head_dim)
    softcap: float | None = None  # attention logit soft-capping (Gemma 2)
    partial_rotary_factor: float = 1.0
    activation: str = "silu"
    experts: str | None = None  # key of _EXPERTS
    num_experts: int = 0
    experts_per_token: int = 0
    normalize_expert_weights: bool = True
    dense_layers: frozenset[int] = field(default_factory=frozenset)  # MoE models' dense MLPs

    @property
    def attention(self) -> LayerAttention:
        return self.layers[self.layer]

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)

    def first_global_layer(self) -> int | None:
        found = [layer.index for layer in self.layers if layer.sliding_window is None]
        return found[0] if found else None

    def local_layer_problem(self, length: int) -> str | None:
        """Why the scored layer must not score sequences of ``length`` tokens, or None.

        The local/global rule: a sliding-window (local) layer attends only to its last
        ``sliding_window`` positions, so for a longer sequence the long-range attention the
        score measures is cut off by construction. Such a layer is never scored; the message
        names the first global layer, which the user may choose with ``LONGATTN_LAYER``
        (another layer is scored only when asked for).
        """
        window = self.attention.sliding_window
        if self.attention.sees_whole(length):
            return None
        where = f"layer {self.layer} of this {self.model_type} model attends to its last {window} positions only"
        global_layer = self.first_global_layer()
        if global_layer is None:
            return (
                f"{where}, as every layer does, and these sequences have {length} tokens (window plus BOS): "
                f"its long-range attention would be cut off; use windows of at most {window - 1} tokens"
            )
        return (
            f"{where} (a local, sliding-window layer), fewer than the {length} tokens of these sequences "
            f"(window plus BOS): its long-range attention would be cut off. Score a global layer: "
            f"LONGATTN_LAYER={global_layer} (longattn score --layer {global_layer}) names the first one"
        )

    def has_experts(self, index: int) -> bool:
        return self.experts is not None and index not in self.dense_layers

    def layer_tensors(self, index: int, *, lower: bool) -> dict[str, str]:
        """Role -> tensor name (relative to ``layers.{index}.``) of what layer ``index`` needs.

        The scored layer (``lower=False``) needs its input norm and q/k projections; a layer
        below it (``lower=True``) needs everything its forward pass uses. Bias roles end in
        ``_bias`` and are read only when the checkpoint has them.
        """
        names = {role: f"{module}.weight" for role, module in self.norms.items()}
        if not lower:
            names = {k: v for k, v in names.items() if k == "pre_attention"}
        if self.fused:
            names["qkv"] = "self_attn.qkv_proj.weight"
        for p in ("q", "k", "v", "o") if lower else ("q", "k"):
            if not self.fused:
                names[p] = f"self_attn.{p}_proj.weight"
            names[f"{p}_bias"] = f"self_attn.{p}_proj.bias"
        if self.fused and lower:
            names["o"] = "self_attn.o_proj.weight"
        if self.qk_norm:
            names["q_norm"] = "self_attn.q_norm.weight"
            names["k_norm"] = "self_attn.k_norm.weight"
        if lower:
            names.update(self._mlp_tensors(index))
        return names

    def _mlp_tensors(self, index: int) -> dict[str, str]:
        if self.has_experts(index):
            router, expert, modules = _EXPERTS[self.experts]
            names = {"router": f"{router}.weight"}
            for e in range(self.num_experts):
                for role, module in zip(("gate", "up", "down"), modules, strict=True):
                    names[f"expert{e}.{role}"] = f"{expert.format(e=e)}{module}.weight"
            return names
        if self.fused:
            return {"gate_up": "mlp.gate_up_proj.weight", "down": "mlp.down_proj.weight"}
        return {f"{p}{suffix}": f"mlp.{p}_proj.{kind}" for p in ("gate", "up", "down")
                for suffix, kind in (("", "weight"), ("_bias", "bias"))}  # fmt: skip

    def essentials(self) -> dict[str, Any]:
        """The settings that change scores beyond the tensors (part of the model fingerprint)."""
        return {
            "model_type": self.model_type, "layer": self.layer, "qk_norm": self.qk_norm,
            "gemma": self.gemma, "softmax_scale": self.softmax_scale, "softcap": self.softcap,
            "partial_rotary_factor": self.partial_rotary_factor, "activation": self.activation,
            "experts_per_token": self.experts_per_token,
            "normalize_expert_weights": self.normalize_expert_weights,
            "layers": [[a.sliding_window, a.rope_theta, a.rope_scaling] for a in self.layers[: self.layer + 1]],
        }  # fmt: skip


def _unsupported(model_type: object, config_path: Path) -> ModelFileError:
    feature = _UNSUPPORTED_FEATURES.get(str(model_type))
    why = f" (it uses {feature}, which the scorer does not implement)" if feature else ""
    return ModelFileError(
        f"{config_path}: model_type {model_type!r} is not supported{why}; supported: "
        + ", ".join(SUPPORTED_MODEL_TYPES)
    )


def _refuse(where: Path, feature: str) -> ModelFileError:
    return ModelFileError(f"{where}: {feature}, which the scorer does not implement")


def text_config(raw: dict, config_path: Path) -> Any:
    """transformers' config object of ``raw`` (config.json); the text part of multimodal Gemma 3."""
    model_type = raw.get("model_type")
    if model_type not in _FAMILIES:
        raise _unsupported(model_type, config_path)
    from transformers import CONFIG_MAPPING

    try:
        config = CONFIG_MAPPING[model_type].from_dict(raw)
    except Exception as exc:  # the config classes raise several types for invalid values
        raise ModelFileError(f"{config_path}: not a valid {model_type} config: {exc}") from exc
    return config.get_text_config()


def _scaling(params: Mapping) -> dict | None:
    """Rope scaling parameters without theta and partial factor; None for the default rope."""
    scaling = {k: v for k, v in params.items() if k not in ("rope_theta", "partial_rotary_factor", "type")}
    scaling["rope_type"] = params.get("rope_type", params.get("type", "default"))
    return None if scaling == {"rope_type": "default"} else scaling


def _layer_type(config: Any, index: int) -> str | None:
    layer_types = getattr(config, "layer_types", None)
    return layer_types[index] if layer_types else None


def _layer_rope(config: Any, index: int) -> Mapping:
    params = config.rope_parameters or {}
    layer_type = _layer_type(config, index)
    if layer_type is not None and isinstance(params.get(layer_type), Mapping):
        return params[layer_type]  # one rope per layer type (Gemma 3)
    return params


def _rotary_dim(config: Any, index: int) -> int:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return int(head_dim * float(_layer_rope(config, index).get("partial_rotary_factor", 1.0)))


def _longrope_problem(params: Mapping, rotary_dim: int) -> str | None:
    """Longrope needs one short and one long factor per rotated frequency (rotary_dim / 2)."""
    if params.get("rope_type", params.get("type")) != "longrope":
        return None
    for key in ("short_factor", "long_factor"):
        if len(params[key]) != rotary_dim // 2:
            return f"{key!r} has {len(params[key])} factors, the rotary dimension {rotary_dim} needs {rotary_dim // 2}"
    return None


def _layer_attention(config: Any, index: int, config_path: Path) -> LayerAttention:
    layer_type = _layer_type(config, index)
    if layer_type is not None:
        window = config.sliding_window if layer_type == "sliding_attention" else None
    else:  # Mistral, Mixtral, Phi-3, Qwen3-MoE: one window for every layer, if any
        window = getattr(config, "sliding_window", None)
    params = _layer_rope(config, index)
    problem = rope_parameters_problem({"rope_type": "default", **params}) or _longrope_problem(
        params, _rotary_dim(config, index)
    )
    if problem is not None:
        raise _refuse(config_path, f"layer {index}'s rope parameters: {problem}")
    theta = float(params.get("rope_theta", 10000.0))
    return LayerAttention(index, int(window) if window else None, theta, _scaling(params))


def _with_overrides(
    layers: list[LayerAttention], layer: int, theta: float | None, scaling: dict | None, rotary_dim: int
) -> tuple[LayerAttention, ...]:
    """Rope overrides replace the rope of the scored layer and of every layer that shares it."""
    if scaling is not None:
        problem = rope_parameters_problem(scaling) or _longrope_problem(scaling, rotary_dim)
        if problem is not None:
            raise InvalidSetting("rope_scaling", scaling, f"valid rope parameters ({problem})")
    chosen = (layers[layer].rope_theta, layers[layer].rope_scaling)
    return tuple(
        LayerAttention(
            item.index,
            item.sliding_window,
            theta if theta is not None else item.rope_theta,
            _scaling(scaling) if scaling is not None else item.rope_scaling,
        )
        if (item.rope_theta, item.rope_scaling) == chosen
        else item
        for item in layers
    )


def _check_features(config: Any, raw: dict, config_path: Path, model_type: str, layer: int) -> None:
    if getattr(config, "use_bidirectional_attention", False):
        raise _refuse(config_path, "bidirectional attention (use_bidirectional_attention)")
    for key in ("kv_lora_rank", "q_lora_rank"):
        if raw.get(key) or getattr(config, key, None):
            raise _refuse(config_path, f"multi-head latent attention (MLA, {key})")
    activation = getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", "silu")
    if layer > 0 and activation not in ACTIVATIONS:
        raise _refuse(config_path, f"the MLP activation {activation!r} (implemented: {', '.join(ACTIVATIONS)})")
    partial = float(_layer_rope(config, layer).get("partial_rotary_factor", 1.0))
    if partial != 1.0 and model_type != "phi3":
        raise _refuse(config_path, f"partial rotary embeddings (partial_rotary_factor {partial}) in {model_type}")


def family_of(
    raw: dict,
    config_path: Path,
    *,
    layer: int = 0,
    rope_theta: float | None = None,
    rope_scaling: dict | None = None,
) -> Family:
    """The :class:`Family` of a config.json (``raw``) with ``layer`` chosen for scoring."""
    config = text_config(raw, config_path)
    model_type = raw["model_type"]
    spec = _FAMILIES[model_type]
    num_layers = int(config.num_hidden_layers)
    if not 0 <= layer < num_layers:
        raise InvalidSetting("layer", layer, f"a layer of the model: 0 to {num_layers - 1}")
    _check_features(config, raw, config_path, model_type, layer)
    layers = [_layer_attention(config, i, config_path) for i in range(num_layers)]
    num_heads = int(config.num_attention_heads)
    experts = spec.get("experts")
    num_experts = int(getattr(config, "num_local_experts", None) or getattr(config, "num_experts", 0) or 0)
    dense: frozenset[int] = frozenset()
    if model_type == "qwen3_moe":
        step = int(getattr(config, "decoder_sparse_step", 1) or 1)
        dense = frozenset(
            i for i in range(num_layers)
            if i in (config.mlp_only_layers or []) or num_experts == 0 or (i + 1) % step
        )  # fmt: skip
    gemma = bool(spec.get("gemma"))
    return Family(
        model_type=model_type,
        layer=layer,
        num_layers=num_layers,
        hidden_size=int(config.hidden_size),
        num_heads=num_heads,
        num_kv_heads=int(getattr(config, "num_key_value_heads", None) or num_heads),
        head_dim=int(getattr(config, "head_dim", None) or config.hidden_size // num_heads),
        rms_norm_eps=float(config.rms_norm_eps),
        max_position_embeddings=int(config.max_position_embeddings),
        norms=spec["norms"],
        layers=_with_overrides(layers, layer, rope_theta, rope_scaling, _rotary_dim(config, layer)),
        qk_norm=spec.get("qk_norm"),
        fused=bool(spec.get("fused")),
        gemma=gemma,
        softmax_scale=float(config.query_pre_attn_scalar) ** -0.5 if gemma else None,
        softcap=float(config.attn_logit_softcapping) if getattr(config, "attn_logit_softcapping", None) else None,
        partial_rotary_factor=float(_layer_rope(config, layer).get("partial_rotary_factor", 1.0)),
        activation=getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", "silu"),
        experts=experts,
        num_experts=num_experts if experts else 0,
        experts_per_token=int(getattr(config, "num_experts_per_tok", 0) or 0) if experts else 0,
        normalize_expert_weights=bool(getattr(config, "norm_topk_prob", True)),
        dense_layers=dense,
    )


def check_attention_tensors(names: set[str], layer_prefix: str, where: Path) -> None:
    """Refuse a layer whose attention holds tensors the scorer does not know (e.g. sinks)."""
    attention = f"{layer_prefix}self_attn."
    for name in sorted(names):
        rest = name[len(attention):] if name.startswith(attention) else None
        if rest is None or rest.startswith(_ATTENTION_NAMES + _IGNORED_ATTENTION):
            continue
        feature = "attention sinks" if rest.startswith("sinks") else "an attention tensor"
        raise _refuse(where, f"{name} ({feature})")


def gguf_llama_family(
    *,
    layer: int,
    num_layers: int,
    hidden_size: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    rms_norm_eps: float,
    rope_theta: float,
    max_position_embeddings: int,
    rope_theta_override: float | None = None,
    rope_scaling: dict | None = None,
) -> Family:
    """The family of a GGUF ``llama`` file (its settings come from the GGUF metadata)."""
    if not 0 <= layer < num_layers:
        raise InvalidSetting("layer", layer, f"a layer of the model: 0 to {num_layers - 1}")
    layers = [LayerAttention(i, None, rope_theta, None) for i in range(num_layers)]
    return Family(
        model_type="llama",
        layer=layer,
        num_layers=num_layers,
        hidden_size=hidden_size,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        rms_norm_eps=rms_norm_eps,
        max_position_embeddings=max_position_embeddings,
        norms=_PRE_NORMS,
        layers=_with_overrides(layers, layer, rope_theta_override, rope_scaling, head_dim),
    )
