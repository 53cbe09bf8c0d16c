"""Build a ready scorer from plain settings (a model spec, device and dtype names)."""

from __future__ import annotations

import logging

import torch

from ..model.layer0 import load_layer0
from ..model.source import resolve_model
from ..model.tokenizer import load_tokenizer
from .scorer import Layer0Scorer

log = logging.getLogger("longattn_assets")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def scorer_dtype(name: str, device: str) -> torch.dtype | None:
    """``auto``: bf16 on CUDA (fp32 statistics inside), fp32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto, {', '.join(DTYPES)}; not {name!r}")
    return DTYPES[name]


def build_scorer(
    model: str | None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    batch_tokens: int = 65536,
    block_size: int = 512,
    add_bos: bool = True,
    rope_theta: float | None = None,
    rope_scaling: dict | None = None,
    kernel: str = "auto",
    layer: int = 0,
) -> Layer0Scorer:
    source = resolve_model(model)
    tokenizer = load_tokenizer(source)
    weights = load_layer0(source, rope_theta=rope_theta, rope_scaling=rope_scaling, layer=layer)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    scorer = Layer0Scorer(
        weights,
        device=device,
        dtype=scorer_dtype(dtype, device),
        block_size=block_size,
        batch_tokens=batch_tokens,
        add_bos=add_bos,
        bos_token_id=tokenizer.bos_token_id,
        kernel=kernel,
    )
    log.info(
        "scorer ready: layer %d of %s on %s (%s kernel)", layer, source.spec, scorer.device, scorer.kernel
    )
    return scorer
