"""Load the few tensors of a causal LM that layer-0 attention needs, and nothing else.

Scoring a window needs the token embeddings, layer 0's input RMSNorm and its query and key
projections (1.2 of DESIGN.md). A 7B checkpoint holds ~14 GB of which these are a few
hundred MB, so the loaders read only these tensors: from a sharded safetensors checkpoint
only the shards that hold them are opened, from a GGUF file only their bytes are touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .source import ModelFileError, ModelNotFoundError, ModelSource, file_identity, resolve_model

logger = logging.getLogger("longattn_assets")

# Architectures whose layer 0 is embed -> RMSNorm -> q_proj/k_proj (+ optional bias) -> RoPE.
HF_ARCHITECTURES = {"llama", "mistral", "qwen2"}
GGUF_ARCHITECTURES = {"llama"}
GGUF_TENSORS = (
    "token_embd.weight",
    "blk.0.attn_norm.weight",
    "blk.0.attn_q.weight",
    "blk.0.attn_k.weight",
)


@dataclass(frozen=True)
class Layer0Weights:
    """Everything layer-0 attention scores need, as float32 tensors on the CPU."""

    embed_tokens: torch.Tensor  # [V, H]
    input_layernorm: torch.Tensor  # [H]
    rms_norm_eps: float
    q_proj: torch.Tensor  # [Hq * D, H]
    k_proj: torch.Tensor  # [Hkv * D, H]
    q_bias: torch.Tensor | None
    k_bias: torch.Tensor | None
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float
    rope_scaling: dict | None
    max_position_embeddings: int
    fingerprint: str
    bytes_read: int
    source: ModelSource
    sliding_window: int | None = None


def _fingerprint(essentials: dict, digests: list[bytes]) -> str:
    h = hashlib.sha256(json.dumps(essentials, sort_keys=True).encode())
    for digest in digests:
        h.update(digest)
    return "mdl-" + h.hexdigest()[:16]


def _tensor_digest(tensor: torch.Tensor) -> bytes:
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
    return hashlib.sha256(raw.data).digest()


def _rope_from_hf_config(config: dict) -> tuple[float, dict | None]:
    """Theta and scaling from either the classic (rope_theta, rope_scaling) keys or v5's rope_parameters."""
    params = dict(config.get("rope_parameters") or {})
    theta = config.get("rope_theta", params.pop("rope_theta", 10000.0))
    params.pop("rope_theta", None)
    scaling = config.get("rope_scaling") or params or None
    if scaling is not None:
        scaling = dict(scaling)
        scaling.setdefault("rope_type", scaling.get("type", "default"))
        if scaling["rope_type"] == "default":
            scaling = None
    return float(theta), scaling


def _find_prefix(names: set[str], path: Path) -> str:
    for prefix in ("model.", "", "model.language_model.", "language_model.model."):
        if (
            f"{prefix}embed_tokens.weight" in names
            and f"{prefix}layers.0.self_attn.q_proj.weight" in names
        ):
            return prefix
    raise ModelFileError(f"{path}: no embed_tokens / layers.0.self_attn.q_proj tensors found")


def _safetensors_layout(folder: Path) -> dict[str, Path]:
    """Tensor name -> shard file, from the index or from the single file's header."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise ModelFileError(f"{index} is not a valid safetensors index: {exc}") from exc
        return {name: folder / shard for name, shard in weight_map.items()}
    single = folder / "model.safetensors"
    if not single.is_file():
        raise ModelNotFoundError(
            f"{folder} holds no model.safetensors nor model.safetensors.index.json"
        )
    try:
        with safe_open(str(single), framework="pt") as handle:
            return dict.fromkeys(handle.keys(), single)
    except Exception as exc:  # safetensors raises its own error type for a bad header
        raise ModelFileError(f"{single} is not a readable safetensors file: {exc}") from exc


def _read_safetensors(wanted: dict[str, Path]) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    by_shard: dict[Path, list[str]] = {}
    for name, shard in wanted.items():
        by_shard.setdefault(shard, []).append(name)
    for shard in by_shard:
        if not shard.is_file():
            raise ModelNotFoundError(f"shard {shard} named by the index is missing")
    tensors = {}
    for shard, names in by_shard.items():
        try:
            with safe_open(str(shard), framework="pt") as handle:
                for name in names:
                    tensors[name] = handle.get_tensor(name)
        except Exception as exc:
            raise ModelFileError(f"{shard} is not a readable safetensors file: {exc}") from exc
    return tensors


def _load_hf(
    source: ModelSource, rope_theta: float | None, rope_scaling: dict | None
) -> Layer0Weights:
    folder = source.path
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"{config_path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{config_path} is not valid JSON: {exc}") from exc
    model_type = config.get("model_type")
    if model_type not in HF_ARCHITECTURES:
        raise ModelFileError(
            f"{config_path}: model_type {model_type!r} is not one of {sorted(HF_ARCHITECTURES)}"
        )
    layout = _safetensors_layout(folder)
    prefix = _find_prefix(set(layout), folder)
    attn = f"{prefix}layers.0.self_attn."
    names = {
        "embed": f"{prefix}embed_tokens.weight",
        "norm": f"{prefix}layers.0.input_layernorm.weight",
        "q": f"{attn}q_proj.weight",
        "k": f"{attn}k_proj.weight",
        "q_bias": f"{attn}q_proj.bias",
        "k_bias": f"{attn}k_proj.bias",
    }
    wanted = {key: name for key, name in names.items() if name in layout}
    raw = _read_safetensors({name: layout[name] for name in wanted.values()})
    tensors = {key: raw[name] for key, name in wanted.items()}

    num_heads = int(config["num_attention_heads"])
    theta, scaling = _rope_from_hf_config(config)
    sliding = config.get("sliding_window")
    if model_type == "qwen2" and not config.get("use_sliding_window", False):
        sliding = None
    return _assemble(
        tensors,
        source=source,
        num_heads=num_heads,
        num_kv_heads=int(config.get("num_key_value_heads") or num_heads),
        head_dim=int(config.get("head_dim") or config["hidden_size"] // num_heads),
        rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_theta=rope_theta if rope_theta is not None else theta,
        rope_scaling=rope_scaling if rope_scaling is not None else scaling,
        max_position_embeddings=int(config.get("max_position_embeddings", 2048)),
        sliding_window=int(sliding) if sliding else None,
        digests=[_tensor_digest(tensors[key]) for key in sorted(tensors)],
        bytes_read=sum(t.numel() * t.element_size() for t in tensors.values()),
    )


def _reverse_gguf_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's interleaving of RoPE halves in Q/K rows, exactly as transformers does."""
    dim = weights.shape[0] // n_head // 2
    w = weights.reshape(n_head, dim, 2, *weights.shape[1:])
    return w.swapaxes(2, 1).reshape(weights.shape)


def _gguf_value(reader, key: str, default=None):
    entry = reader.fields.get(key)
    return default if entry is None else entry.contents()


def _read_gguf(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Dequantized layer-0 tensors and their settings, parsed from the GGUF file itself."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # the reader raises ValueError, struct or numpy errors on bad bytes
        raise ModelFileError(f"{path} is not a readable GGUF file: {exc}") from exc
    arch = _gguf_value(reader, "general.architecture")
    if arch not in GGUF_ARCHITECTURES:
        raise ModelFileError(
            f"{path}: GGUF architecture {arch!r} is not one of {sorted(GGUF_ARCHITECTURES)}"
        )
    by_name = {t.name: t for t in reader.tensors}
    missing = [name for name in GGUF_TENSORS if name not in by_name]
    if missing:
        raise ModelFileError(f"{path}: GGUF file lacks tensors {missing}")

    num_heads = int(_gguf_value(reader, f"{arch}.attention.head_count"))
    num_kv_heads = int(_gguf_value(reader, f"{arch}.attention.head_count_kv", num_heads))
    hidden = int(_gguf_value(reader, f"{arch}.embedding_length"))
    chosen = [by_name[name] for name in GGUF_TENSORS]
    arrays = [dequantize(t.data, t.tensor_type) for t in chosen]
    arrays[2] = _reverse_gguf_permute(arrays[2], num_heads)
    arrays[3] = _reverse_gguf_permute(arrays[3], num_kv_heads)
    tensors = dict(
        zip(
            ("embed", "norm", "q", "k"),
            (torch.from_numpy(np.array(a, dtype=np.float32)) for a in arrays),
        )
    )
    meta = {
        "num_heads": num_heads,
        "num_kv_heads": num_kv_heads,
        "head_dim": int(_gguf_value(reader, f"{arch}.rope.dimension_count", hidden // num_heads)),
        "rms_norm_eps": float(
            _gguf_value(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
        ),
        "rope_theta": float(_gguf_value(reader, f"{arch}.rope.freq_base", 10000.0)),
        "max_position_embeddings": int(_gguf_value(reader, f"{arch}.context_length", 2048)),
        "digests": [hashlib.sha256(np.asarray(t.data).data).hexdigest() for t in chosen],
        "bytes_read": sum(int(t.n_bytes) for t in chosen),
    }
    return tensors, meta


def _cached_gguf(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """:func:`_read_gguf`, cached: parsing a GGUF's metadata (its whole vocabulary) and
    dequantizing take seconds, so the result is kept under the cache dir, keyed by the
    file's path, size and modification time."""
    from safetensors.torch import load_file, save_file

    from .. import settings
    from ..storage import atomic_path, write_text

    folder = settings.cache_dir() / "layer0" / file_identity(path)
    tensors_path, meta_path = folder / "layer0.safetensors", folder / "meta.json"
    if tensors_path.is_file() and meta_path.is_file():
        try:
            return load_file(str(tensors_path)), json.loads(meta_path.read_text())
        except Exception as exc:  # a damaged cache entry is rebuilt, never trusted
            logger.warning("ignoring unreadable layer-0 cache %s: %s", folder, exc)
    tensors, meta = _read_gguf(path)
    with atomic_path(tensors_path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    write_text(json.dumps(meta), meta_path)
    return tensors, meta


def _load_gguf(
    source: ModelSource, rope_theta: float | None, rope_scaling: dict | None
) -> Layer0Weights:
    if not source.path.is_file():
        raise ModelNotFoundError(f"GGUF model file {source.path} does not exist")
    tensors, meta = _cached_gguf(source.path)
    return _assemble(
        tensors,
        source=source,
        num_heads=meta["num_heads"],
        num_kv_heads=meta["num_kv_heads"],
        head_dim=meta["head_dim"],
        rms_norm_eps=meta["rms_norm_eps"],
        rope_theta=rope_theta if rope_theta is not None else meta["rope_theta"],
        rope_scaling=rope_scaling,
        max_position_embeddings=meta["max_position_embeddings"],
        sliding_window=None,
        digests=[bytes.fromhex(d) for d in meta["digests"]],
        bytes_read=meta["bytes_read"],
    )


def _assemble(
    tensors: dict[str, torch.Tensor],
    *,
    source: ModelSource,
    digests: list[bytes],
    bytes_read: int,
    **cfg,
) -> Layer0Weights:
    hidden = tensors["embed"].shape[1]
    expected = {
        "q": (cfg["num_heads"] * cfg["head_dim"], hidden),
        "k": (cfg["num_kv_heads"] * cfg["head_dim"], hidden),
        "norm": (hidden,),
    }
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            raise ModelFileError(
                f"{source.path}: {key} has shape {tuple(tensors[key].shape)}, config implies {shape}"
            )
    if cfg["num_heads"] % cfg["num_kv_heads"]:
        raise ModelFileError(
            f"{source.path}: {cfg['num_heads']} query heads do not group over {cfg['num_kv_heads']} kv heads"
        )
    weights = Layer0Weights(
        embed_tokens=tensors["embed"].float(),
        input_layernorm=tensors["norm"].float(),
        q_proj=tensors["q"].float(),
        k_proj=tensors["k"].float(),
        q_bias=tensors["q_bias"].float() if "q_bias" in tensors else None,
        k_bias=tensors["k_bias"].float() if "k_bias" in tensors else None,
        fingerprint=_fingerprint(cfg, digests),
        bytes_read=bytes_read,
        source=source,
        **cfg,
    )
    logger.info(
        "layer 0 of %s: read %.1f MB of tensors (%s)",
        source.spec,
        bytes_read / 1e6,
        weights.fingerprint,
    )
    return weights


def load_layer0(
    model: str | ModelSource | None = None,
    *,
    rope_theta: float | None = None,
    rope_scaling: dict | None = None,
) -> Layer0Weights:
    """Layer-0 weights of ``model`` (a spec or a resolved source); rope settings may be overridden."""
    source = model if isinstance(model, ModelSource) else resolve_model(model)
    if source.kind == "gguf":
        return _load_gguf(source, rope_theta, rope_scaling)
    return _load_hf(source, rope_theta, rope_scaling)
