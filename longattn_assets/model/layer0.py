"""Load the few tensors of a causal LM that the scored layer's attention needs, and nothing else.

Scoring a window needs the token embeddings, the scored layer's input RMSNorm and its query
and key projections (1.2 of DESIGN.md), plus its q/k norms where the family has them
(families.py). The scored layer is layer 0 unless ``LONGATTN_LAYER`` names another; then
the layers below it are read whole, since they make its input. A 7B checkpoint holds
~14 GB of which layer 0's attention needs a few hundred MB, so the loaders read only these
tensors: from a sharded safetensors checkpoint only the shards that hold them are opened,
from a GGUF file only their bytes are touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..validation import InvalidSetting
from .families import Family, LayerAttention, check_attention_tensors, family_of, gguf_llama_family
from .source import ModelFileError, ModelNotFoundError, ModelSource, file_identity, resolve_model

logger = logging.getLogger("longattn_assets")

GGUF_ARCHITECTURES = {"llama"}
# GGUF names of a llama block's tensors, by role (families.py's names for Llama).
_GGUF_ROLES = {
    "pre_attention": "attn_norm", "q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
    "pre_mlp": "ffn_norm", "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down",
}  # fmt: skip


@dataclass(frozen=True)
class LowerLayerWeights:
    """A decoder layer below the scored one: what its forward pass needs, float32, by role
    (``Family.layer_tensors``: norms, q/k/v/o and biases, q/k norms, MLP or experts)."""

    attention: LayerAttention
    tensors: Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Layer0Weights:
    """Everything the scored layer's attention scores need, as float32 tensors on the CPU.

    The name stays from when layer 0 was the only choice: ``layer`` says which layer these
    are, and ``lower_layers`` hold the layers below it (none for layer 0).
    """

    embed_tokens: torch.Tensor  # [V, H]
    input_layernorm: torch.Tensor | None  # [H]; None where the family has none (OLMo 2)
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
    family: Family
    sliding_window: int | None = None
    embed_scale: float | None = None  # Gemma: sqrt(hidden) in the checkpoint's dtype
    q_norm: torch.Tensor | None = None  # [D] or [Hq * D] (family.qk_norm)
    k_norm: torch.Tensor | None = None
    lower_layers: tuple[LowerLayerWeights, ...] = field(default=())

    @property
    def layer(self) -> int:
        return self.family.layer

    @property
    def rotary_dim(self) -> int:
        return self.family.rotary_dim

    @property
    def softmax_scale(self) -> float | None:
        return self.family.softmax_scale

    @property
    def softcap(self) -> float | None:
        return self.family.softcap


def _fingerprint(essentials: dict, digests: list[bytes]) -> str:
    h = hashlib.sha256(json.dumps(essentials, sort_keys=True).encode())
    for digest in digests:
        h.update(digest)
    return "mdl-" + h.hexdigest()[:16]


def _tensor_digest(tensor: torch.Tensor) -> bytes:
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
    return hashlib.sha256(raw.data).digest()


def _find_prefix(names: set[str], path: Path) -> str:
    for prefix in ("model.", "", "model.language_model.", "language_model.model."):
        if f"{prefix}embed_tokens.weight" in names and (
            f"{prefix}layers.0.self_attn.q_proj.weight" in names
            or f"{prefix}layers.0.self_attn.qkv_proj.weight" in names
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


def _wanted_hf(family: Family, layout: dict[str, Path], prefix: str, folder: Path) -> dict[str, str]:
    """Key -> tensor name of everything scoring needs: ``embed``, the scored layer's roles
    (``norm``, ``q``, ``k``, ...) and ``{i}.{role}`` of each layer below it."""
    wanted = {"embed": f"{prefix}embed_tokens.weight"}
    for index in range(family.layer + 1):
        lower = index < family.layer
        layer_prefix = f"{prefix}layers.{index}."
        check_attention_tensors(set(layout), layer_prefix, folder)
        for role, name in family.layer_tensors(index, lower=lower).items():
            key = f"{index}.{role}" if lower else ("norm" if role == "pre_attention" else role)
            full = layer_prefix + name
            if full in layout:
                wanted[key] = full
            elif not role.endswith("_bias"):
                raise ModelFileError(f"{folder}: the checkpoint has no {full} (needed by {family.model_type})")
    return wanted


def _load_hf(
    source: ModelSource, rope_theta: float | None, rope_scaling: dict | None, layer: int
) -> Layer0Weights:
    folder = source.path
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"{config_path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{config_path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelFileError(f"{config_path} does not hold a JSON object")
    family = family_of(config, config_path, layer=layer, rope_theta=rope_theta, rope_scaling=rope_scaling)
    layout = _safetensors_layout(folder)
    prefix = _find_prefix(set(layout), folder)
    wanted = _wanted_hf(family, layout, prefix, folder)
    raw = _read_safetensors({name: layout[name] for name in wanted.values()})
    tensors = {key: raw[name] for key, name in wanted.items()}
    stored_dtype = tensors["embed"].dtype
    return _assemble(
        _unfused(tensors, family),
        source=source,
        family=family,
        embed_scale=_embed_scale(family, stored_dtype),
        digests=[_tensor_digest(tensors[key]) for key in sorted(tensors)],
        bytes_read=sum(t.numel() * t.element_size() for t in tensors.values()),
    )


def _embed_scale(family: Family, stored_dtype: torch.dtype) -> float | None:
    """Gemma's sqrt(hidden), rounded to the dtype the embeddings are stored in, as
    transformers computes it when the model runs in that dtype (55.5 for hidden 3072 in bf16)."""
    if not family.gemma:
        return None
    return float(torch.tensor(family.hidden_size**0.5, dtype=torch.float32).to(stored_dtype))


def _unfused(tensors: dict[str, torch.Tensor], family: Family) -> dict[str, torch.Tensor]:
    """Split Phi-3's fused qkv and gate_up projections into the roles the others use."""
    widths = [family.num_heads * family.head_dim, family.num_kv_heads * family.head_dim]
    result = {}
    for key, tensor in tensors.items():
        head, _, role = key.rpartition(".")
        scope = f"{head}." if head else ""
        if role == "qkv":
            q, k, v = tensor.split([*widths, tensor.shape[0] - sum(widths)])
            result.update({f"{scope}q": q, f"{scope}k": k} | ({f"{scope}v": v} if head else {}))
        elif role == "gate_up":
            result[f"{scope}gate"], result[f"{scope}up"] = tensor.chunk(2)
        else:
            result[key] = tensor
    return result


def _reverse_gguf_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's interleaving of RoPE halves in Q/K rows, exactly as transformers does."""
    dim = weights.shape[0] // n_head // 2
    w = weights.reshape(n_head, dim, 2, *weights.shape[1:])
    return w.swapaxes(2, 1).reshape(weights.shape)


def _gguf_value(reader, key: str, default=None):
    entry = reader.fields.get(key)
    return default if entry is None else entry.contents()


def _gguf_names(layer: int) -> dict[str, str]:
    """Key -> GGUF tensor name, keyed as the safetensors loader keys them (``_wanted_hf``)."""
    names = {"embed": "token_embd.weight"}
    for index in range(layer):
        names.update({f"{index}.{role}": f"blk.{index}.{name}.weight" for role, name in _GGUF_ROLES.items()})
    scored = {"norm": "pre_attention", "q": "q", "k": "k"}
    names.update({key: f"blk.{layer}.{_GGUF_ROLES[role]}.weight" for key, role in scored.items()})
    return names


def _read_gguf(path: Path, layer: int) -> tuple[dict[str, torch.Tensor], dict]:
    """Dequantized tensors of the layers up to ``layer`` and their settings, parsed from the GGUF file."""
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
    num_layers = int(_gguf_value(reader, f"{arch}.block_count", 1))
    if not 0 <= layer < num_layers:
        raise InvalidSetting("layer", layer, f"a layer of the model: 0 to {num_layers - 1}")
    by_name = {t.name: t for t in reader.tensors}
    names = _gguf_names(layer)
    missing = [name for name in names.values() if name not in by_name]
    if missing:
        raise ModelFileError(f"{path}: GGUF file lacks tensors {missing}")

    num_heads = int(_gguf_value(reader, f"{arch}.attention.head_count"))
    num_kv_heads = int(_gguf_value(reader, f"{arch}.attention.head_count_kv", num_heads))
    hidden = int(_gguf_value(reader, f"{arch}.embedding_length"))
    chosen = {key: by_name[name] for key, name in names.items()}
    tensors = {}
    for key, tensor in chosen.items():
        array = dequantize(tensor.data, tensor.tensor_type)
        role = key.rpartition(".")[2]
        if role in ("q", "k"):  # llama.cpp interleaves RoPE halves in Q/K rows
            array = _reverse_gguf_permute(array, num_heads if role == "q" else num_kv_heads)
        tensors[key] = torch.from_numpy(np.array(array, dtype=np.float32))
    meta = {
        "num_layers": num_layers,
        "hidden_size": hidden,
        "num_heads": num_heads,
        "num_kv_heads": num_kv_heads,
        "head_dim": int(_gguf_value(reader, f"{arch}.rope.dimension_count", hidden // num_heads)),
        "rms_norm_eps": float(
            _gguf_value(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
        ),
        "rope_theta": float(_gguf_value(reader, f"{arch}.rope.freq_base", 10000.0)),
        "max_position_embeddings": int(_gguf_value(reader, f"{arch}.context_length", 2048)),
        "digests": {key: hashlib.sha256(np.asarray(t.data).data).hexdigest() for key, t in chosen.items()},
        "bytes_read": sum(int(t.n_bytes) for t in chosen.values()),
    }
    return tensors, meta


def _cached_gguf(path: Path, layer: int) -> tuple[dict[str, torch.Tensor], dict]:
    """:func:`_read_gguf`, cached: parsing a GGUF's metadata (its whole vocabulary) and
    dequantizing take seconds, so the result is kept under the cache dir, keyed by the
    file's path and version (size, mtime, ctime, inode: `source.file_identity`) and the scored layer."""
    from safetensors.torch import load_file, save_file

    from .. import settings
    from ..storage import atomic_path, write_text

    folder = settings.cache_dir() / "layer0" / file_identity(path)
    stem = "" if layer == 0 else str(layer)
    tensors_path, meta_path = folder / f"layer{layer}.safetensors", folder / f"meta{stem}.json"
    if tensors_path.is_file() and meta_path.is_file():
        try:
            tensors, meta = load_file(str(tensors_path)), json.loads(meta_path.read_text())
            if set(tensors) == set(meta["digests"]) and "num_layers" in meta:
                return tensors, meta
            logger.warning("ignoring a layer-%d cache %s written by an older version", layer, folder)
        except Exception as exc:  # a damaged cache entry is rebuilt, never trusted
            logger.warning("ignoring unreadable layer-%d cache %s: %s", layer, folder, exc)
    tensors, meta = _read_gguf(path, layer)
    with atomic_path(tensors_path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    write_text(json.dumps(meta), meta_path)
    return tensors, meta


def _load_gguf(
    source: ModelSource, rope_theta: float | None, rope_scaling: dict | None, layer: int
) -> Layer0Weights:
    if not source.path.is_file():
        raise ModelNotFoundError(f"GGUF model file {source.path} does not exist")
    tensors, meta = _cached_gguf(source.path, layer)
    family = gguf_llama_family(
        layer=layer,
        **{key: meta[key] for key in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
                                      "rms_norm_eps", "rope_theta", "max_position_embeddings")},
        rope_theta_override=rope_theta,
        rope_scaling=rope_scaling,
    )  # fmt: skip
    return _assemble(
        tensors,
        source=source,
        family=family,
        embed_scale=None,
        digests=[bytes.fromhex(meta["digests"][key]) for key in sorted(meta["digests"])],
        bytes_read=meta["bytes_read"],
    )


_NORM_ROLES = ("pre_attention", "post_attention", "pre_mlp", "post_mlp", "q_norm", "k_norm")


def _float(tensor: torch.Tensor, role: str, family: Family) -> torch.Tensor:
    """float32, with Gemma's RMSNorm weights stored as w for (1 + w) turned into 1 + w
    (the same float32 addition transformers makes in every forward pass)."""
    tensor = tensor.float()
    return 1.0 + tensor if family.gemma and role in _NORM_ROLES else tensor


def _check_shapes(tensors: dict[str, torch.Tensor], family: Family, where: Path) -> None:
    hidden, q_width, kv_width = (
        tensors["embed"].shape[1], family.num_heads * family.head_dim, family.num_kv_heads * family.head_dim
    )  # fmt: skip
    if family.num_heads % family.num_kv_heads:
        raise ModelFileError(
            f"{where}: {family.num_heads} query heads do not group over {family.num_kv_heads} kv heads"
        )
    norm_widths = {"head": (family.head_dim, family.head_dim), "projection": (q_width, kv_width)}
    q_norm, k_norm = norm_widths.get(family.qk_norm, (0, 0))
    expected = {"q": (q_width, hidden), "k": (kv_width, hidden), "v": (kv_width, hidden),
                "o": (hidden, q_width), "norm": (hidden,), "pre_attention": (hidden,),
                "q_norm": (q_norm,), "k_norm": (k_norm,)}  # fmt: skip
    for key, tensor in tensors.items():
        shape = expected.get(key.rpartition(".")[2])
        if shape is not None and tuple(tensor.shape) != shape:
            raise ModelFileError(f"{where}: {key} has shape {tuple(tensor.shape)}, config implies {shape}")


def _assemble(
    tensors: dict[str, torch.Tensor],
    *,
    source: ModelSource,
    family: Family,
    embed_scale: float | None,
    digests: list[bytes],
    bytes_read: int,
) -> Layer0Weights:
    _check_shapes(tensors, family, source.path)
    attention = family.attention
    cfg = {
        "num_heads": family.num_heads,
        "num_kv_heads": family.num_kv_heads,
        "head_dim": family.head_dim,
        "rms_norm_eps": family.rms_norm_eps,
        "rope_theta": attention.rope_theta,
        "rope_scaling": attention.rope_scaling,
        "max_position_embeddings": family.max_position_embeddings,
        "sliding_window": attention.sliding_window,
    }
    lower = tuple(
        LowerLayerWeights(
            family.layers[index],
            {key.partition(".")[2]: _float(t, key.partition(".")[2], family)
             for key, t in tensors.items() if key.startswith(f"{index}.")},
        )  # fmt: skip
        for index in range(family.layer)
    )
    scored = {key: _float(t, key, family) for key, t in tensors.items() if "." not in key and key != "norm"}
    weights = Layer0Weights(
        embed_tokens=scored["embed"],
        input_layernorm=_float(tensors["norm"], "pre_attention", family) if "norm" in tensors else None,
        q_proj=scored["q"],
        k_proj=scored["k"],
        q_bias=scored.get("q_bias"),
        k_bias=scored.get("k_bias"),
        fingerprint=_fingerprint(
            {**cfg, "family": family.essentials(), "embed_scale": embed_scale}, digests
        ),
        bytes_read=bytes_read,
        source=source,
        family=family,
        embed_scale=embed_scale,
        q_norm=scored.get("q_norm"),
        k_norm=scored.get("k_norm"),
        lower_layers=lower,
        **cfg,
    )
    logger.info(
        "layer %d of %s: read %.1f MB of tensors (%s)",
        family.layer,
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
    layer: int = 0,
) -> Layer0Weights:
    """The scored layer's weights of ``model`` (a spec or a resolved source): layer ``layer``
    (default 0, the paper's first layer) and the layers below it; rope settings may be overridden."""
    source = model if isinstance(model, ModelSource) else resolve_model(model)
    if source.kind == "gguf":
        return _load_gguf(source, rope_theta, rope_scaling, layer)
    return _load_hf(source, rope_theta, rope_scaling, layer)
