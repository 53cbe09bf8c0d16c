"""GPU benchmark of the fused long-range statistics kernel (DESIGN.md 1.2, docs/gpu.md).

Builds random layer-0 weights of Llama-3.1-8B and -70B shapes in bf16 on the GPU (nothing
is downloaded), scores one window of L tokens and prints a markdown table: ms per window
and tokens/s of the fused kernel (statistics only and end to end from token ids), of the
torch streaming path and of a per-head materialized reference, the hardware limit of the
causal work and the fraction of it reached, and fused-vs-reference agreement.

    python benchmarks/gpu_bench.py [--install] [--length 32768] [--output table.md]

Exits 2 without CUDA, 1 when the fused kernel disagrees with a reference by more than
1e-3 relative on any head.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import math
import re
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

AGREEMENT_RTOL = 1e-3
BOS_TOKEN_ID = 128000


@dataclass(frozen=True)
class ModelShape:
    name: str
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int = 128256
    rope_theta: float = 500000.0
    rms_eps: float = 1e-5
    max_position_embeddings: int = 131072


# Llama 3.1 rope scaling, as in both models' config.json.
LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}
SHAPES = {
    "8b": ModelShape("Llama-3.1-8B", hidden=4096, heads=32, kv_heads=8, head_dim=128),
    "70b": ModelShape("Llama-3.1-70B", hidden=8192, heads=64, kv_heads=8, head_dim=128),
}


@dataclass(frozen=True)
class Hardware:
    """Peak rates of one GPU model; docs/gpu.md gives the source of every number."""

    name: str
    pattern: str  # matched against torch.cuda.get_device_properties().name
    sms: int
    clock_hz: float  # max boost clock
    # Dense (no sparsity) FLOP/s of the kernel's dot per input dtype: tensor cores for
    # bf16/fp16 with fp32 accumulation; plain fp32 FMA for fp32 (IEEE dots, no TF32).
    dense_flops: dict[str, float]
    exp_per_clock_per_sm: int = 16  # CUDA guide throughput table, cc 8.x and 9.0: exp2f (MUFU)

    @property
    def exp_rate(self) -> float:
        return self.exp_per_clock_per_sm * self.sms * self.clock_hz


def _rates(half: float, fp32: float) -> dict[str, float]:
    return {"bfloat16": half, "float16": half, "float32": fp32}


HARDWARE = [
    Hardware("A100", r"A100", 108, 1.41e9, _rates(312e12, 19.5e12)),
    Hardware("H100 SXM", r"H100 80GB HBM3|H100 SXM", 132, 1.98e9, _rates(989e12, 67e12)),
    Hardware("H100 PCIe", r"H100 PCIe", 114, 1.755e9, _rates(756e12, 51e12)),
    Hardware("H200 SXM", r"H200", 132, 1.98e9, _rates(989e12, 67e12)),
    Hardware("L40S", r"L40S", 142, 2.52e9, _rates(362e12, 91.6e12)),
]


def detect_hardware(device_name: str, sms: int) -> Hardware | None:
    """The table's entry for a device name and SM count; None for a GPU it does not know."""
    for hw in HARDWARE:
        if re.search(hw.pattern, device_name) and hw.sms == sms:
            return hw
    return None


def causal_long_range_pairs(length: int) -> int:
    """(row, key) pairs the kernel must score for one head: rows r in [o, L), keys 0..r."""
    offset = length - 3 * (length // 4)
    # sum_{r=o}^{L-1} (r + 1) = sum_{j=o+1}^{L} j
    return (length * (length + 1) - offset * (offset + 1)) // 2


@dataclass(frozen=True)
class Limit:
    flops: float
    exps: float
    mma_s: float
    exp_s: float

    @property
    def seconds(self) -> float:
        # Tensor cores and MUFU run concurrently at best, so the slower one bounds the time.
        return max(self.mma_s, self.exp_s)


def work_limit(length: int, heads: int, head_dim: int, hw: Hardware, dtype: str = "bfloat16") -> Limit:
    """Lower bound on the statistics time: QK^T at the dtype's dense rate and one exp per pair."""
    pairs = causal_long_range_pairs(length) * heads
    flops = 2.0 * head_dim * pairs
    return Limit(flops, float(pairs), flops / hw.dense_flops[dtype], pairs / hw.exp_rate)


def limits_table(length: int = 32768, dtype: str = "bfloat16") -> str:
    """Expected (limit) ms per window of each model shape on each GPU of the table."""
    lines = [
        f"| GPU | SMs | dense {dtype} TFLOP/s | exp T/s | "
        + " | ".join(f"{shape.name} ms/window" for shape in SHAPES.values()) + " |",
        "|---|---|---|---|" + "---|" * len(SHAPES),
    ]
    for hw in HARDWARE:
        ms = [work_limit(length, s.heads, s.head_dim, hw, dtype).seconds * 1e3 for s in SHAPES.values()]
        lines.append(
            f"| {hw.name} | {hw.sms} | {hw.dense_flops[dtype] / 1e12:g} | {hw.exp_rate / 1e12:.2f} | "
            + " | ".join(f"{m:.2f}" for m in ms) + " |"
        )
    return "\n".join(lines)


def llama3_inverse_frequencies(head_dim: int, theta: float, scaling: dict) -> torch.Tensor:
    """Llama 3.1 rope frequencies: long wavelengths divided by factor, smooth in between."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    factor = scaling["factor"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    original = scaling["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= original / high) & (wavelen <= original / low)
    return torch.where(medium, smoothed, scaled).float()


def max_relative_difference(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double().cpu(), want.double().cpu()
    return ((got - want).abs() / want.abs()).max().item()


class Layer0:
    """Random bf16 layer-0 weights of one shape and the plain-torch q/k computation."""

    def __init__(self, shape: ModelShape, device: torch.device, seed: int = 0) -> None:
        gen = torch.Generator(device=device).manual_seed(seed)

        def randn(*size: int, std: float) -> torch.Tensor:
            t = torch.randn(*size, generator=gen, device=device, dtype=torch.bfloat16)
            return t.mul_(std)

        self.shape = shape
        self.embed = randn(shape.vocab, shape.hidden, std=0.02)
        self.norm = 1.0 + randn(shape.hidden, std=0.1)
        # std 1/sqrt(hidden) gives unit-variance q and k after RMSNorm: scores of order 1.
        self.wq = randn(shape.heads * shape.head_dim, shape.hidden, std=shape.hidden**-0.5)
        self.wk = randn(shape.kv_heads * shape.head_dim, shape.hidden, std=shape.hidden**-0.5)
        self.inv_freq = llama3_inverse_frequencies(shape.head_dim, shape.rope_theta, LLAMA3_SCALING).to(device)

    def qk(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE'd q [Hq, L, D] and k [Hkv, L, D] in bf16, as transformers' Llama (RoPE in fp32)."""
        s = self.shape
        h = self.embed[ids].float()
        u = (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + s.rms_eps)).to(torch.bfloat16) * self.norm
        q = (u @ self.wq.T).view(-1, s.heads, s.head_dim).transpose(0, 1)
        k = (u @ self.wk.T).view(-1, s.kv_heads, s.head_dim).transpose(0, 1)
        angles = torch.outer(torch.arange(ids.numel(), device=ids.device, dtype=torch.float32), self.inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        cos, sin = angles.cos(), angles.sin()
        return _rope(q, cos, sin), _rope(k, cos, sin)

    def project_with(self, projector_class: type) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """q/k through the project's Layer0Projector, fed these weights by duck typing."""
        s = self.shape
        weights = SimpleNamespace(
            embed_tokens=self.embed, input_layernorm=self.norm, rms_norm_eps=s.rms_eps,
            q_proj=self.wq, k_proj=self.wk, q_bias=None, k_bias=None,
            num_heads=s.heads, num_kv_heads=s.kv_heads, head_dim=s.head_dim,
            rope_theta=s.rope_theta, rope_scaling=LLAMA3_SCALING,
            max_position_embeddings=s.max_position_embeddings,
        )
        projector = projector_class(
            weights, device=self.embed.device, dtype=torch.bfloat16, add_bos=True, bos_token_id=BOS_TOKEN_ID
        )
        # The projector adds BOS itself and takes token ids as Python lists, as the scorer does.
        return lambda ids: projector.project([ids[1:].tolist()])[0]


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x32 = x.float()
    half = x.shape[-1] // 2
    rotated = torch.cat((-x32[..., half:], x32[..., :half]), dim=-1)
    return (x32 * cos + rotated * sin).to(x.dtype).contiguous()


def materialized_statistics(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: one full fp32 L x L softmax matrix per head."""
    heads, length, head_dim = q.shape
    group = heads // k.shape[0]
    rows = torch.arange(length, device=q.device)
    offset = length - 3 * (length // 4)
    future = rows[None, :] > rows[:, None]
    long_range = (rows[:, None] >= offset) & (rows[None, :] <= rows[:, None] - offset)
    n = float(length) ** 2
    ds, du = [], []
    for h in range(heads):
        scores = (q[h].float() @ k[h // group].float().T).mul_(1 / math.sqrt(head_dim))
        probs = scores.masked_fill_(future, float("-inf")).softmax(dim=-1)
        del scores
        masked = probs.mul_(long_range)
        s1 = masked.sum(dtype=torch.float64)
        s2 = masked.square_().sum(dtype=torch.float64)
        del masked, probs
        ds.append(s1 / length)
        du.append((s2 - s1 * s1 / n) / (n - 1))
    return torch.stack(ds), torch.stack(du)


def time_cuda(fn: Callable[[], object], warmup: int, repeats: int) -> tuple[float, object]:
    """Median ms of fn over `repeats` runs after `warmup` runs, timed with CUDA events."""
    for _ in range(warmup):
        out = fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), out


def _optional(module: str, attr: str) -> Callable | None:
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def _ensure_triton(install: bool) -> None:
    if importlib.util.find_spec("triton") is None:
        if not install:
            sys.exit("triton is not installed: rerun with --install or pip install triton")
        subprocess.run([sys.executable, "-m", "pip", "install", "triton"], check=True)


@dataclass(frozen=True)
class Config:
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int

    def __str__(self) -> str:
        return f"{self.block_m}x{self.block_n} w{self.num_warps} s{self.num_stages}"


SWEEP = [Config(128, 64, 8, 3), Config(128, 64, 4, 3), Config(128, 128, 8, 3),
         Config(64, 64, 4, 3), Config(128, 32, 4, 4), Config(64, 128, 4, 3)]


def sweep(fused: Callable, q: torch.Tensor, k: torch.Tensor, args) -> tuple[Config, list[str]]:
    """Fastest of a few tile configs on this device; the first is the launch config table's entry."""
    from longattn_assets.scoring.triton_configs import device_capability, launch_config

    notes = []
    try:
        table = Config(**vars(launch_config(device_capability(q.device), q.dtype, q.shape[2])))
    except ValueError as exc:  # the scorer would use the torch kernel here
        notes.append(f"| table | {exc} |")
        table = SWEEP[0]
    candidates = [table, *(cfg for cfg in SWEEP if cfg != table)]
    best = (math.inf, table)
    for i, cfg in enumerate(candidates if args.sweep else candidates[:1]):
        try:
            ms, _ = time_cuda(lambda cfg=cfg: fused(q, k, **vars(cfg)), args.warmup, args.repeats)
        except Exception as exc:  # a config may exceed shared memory on this device
            if i == 0:
                raise
            notes.append(f"| {cfg} | failed: {type(exc).__name__} |")
            continue
        notes.append(f"| {cfg} | {ms:.2f} ms |")
        best = min(best, (ms, cfg), key=lambda t: t[0])
    return best[1], notes


def bench_shape(
    shape: ModelShape, args, hw: Hardware | None, rows: list[str], failures: list[str], device: torch.device
) -> None:
    from longattn_assets.scoring.triton_statistics import long_range_statistics_triton as fused

    layer = Layer0(shape, device)
    length = args.length
    gen = torch.Generator(device=device).manual_seed(1)
    ids = torch.randint(0, shape.vocab, (length,), device=device, generator=gen)
    ids[0] = BOS_TOKEN_ID
    dtype = getattr(torch, args.dtype)
    q, k = (x.to(dtype) for x in layer.qk(ids))
    cfg, notes = sweep(fused, q, k, args)
    print(f"\n{shape.name} tile sweep at L={length}:\n| config | stats ms |\n|---|---|", *notes, sep="\n")

    def add(method: str, ms: float | None, at: int = length, note: str = "", of_limit: bool = False) -> None:
        if ms is None:
            rows.append(f"| {shape.name} | {method} | {at} | - | - | - | {note} |")
            return
        limit = None if hw is None else work_limit(at, shape.heads, shape.head_dim, hw, args.dtype)
        frac = f"{limit.seconds * 1e3 / ms:.0%}" if of_limit and limit is not None else "-"
        rows.append(f"| {shape.name} | {method} | {at} | {ms:.2f} | {at / ms * 1e3:,.0f} | {frac} | {note} |")

    ms, (ds, du) = time_cuda(lambda: fused(q, k, **vars(cfg)), args.warmup, args.repeats)
    add("fused stats", ms, note=f"tiles {cfg}", of_limit=True)
    project, how = layer.qk, "plain torch in this script"
    projector_class = _optional("longattn_assets.scoring.projections", "Layer0Projector")
    if projector_class is not None:
        try:
            candidate = layer.project_with(projector_class)
            candidate(ids)
            project, how = candidate, "project's Layer0Projector"
        except ImportError as exc:  # e.g. transformers (rope tables) absent on the GPU box
            how += f" (project's projector needs {exc.name})"
    ms, _ = time_cuda(lambda: fused(*(x.to(dtype) for x in project(ids)), **vars(cfg)), args.warmup, args.repeats)
    add("fused end to end", ms, note=f"embed+RMSNorm+q/k proj+RoPE (bf16): {how}", of_limit=True)
    if hw is None:
        rows.append(f"| {shape.name} | limit | {length} | - | - | - | unknown GPU: add it to HARDWARE |")
    else:
        limit = work_limit(length, shape.heads, shape.head_dim, hw, args.dtype)
        rows.append(f"| {shape.name} | limit | {length} | {limit.seconds * 1e3:.2f} | "
                    f"{length / limit.seconds:,.0f} | 100% | QK^T {limit.flops / 1e12:.2f} TFLOP = "
                    f"{limit.mma_s * 1e3:.2f} ms; {limit.exps / 1e9:.2f} G exp = {limit.exp_s * 1e3:.2f} ms |")

    streaming = _optional("longattn_assets.scoring.statistics", "long_range_statistics")
    if streaming is None:
        add("torch streaming", None, note="skipped: longattn_assets.scoring.statistics not importable")
    else:
        try:
            # One run first: an unexpectedly slow path must not eat the time budget.
            ms, (ref_ds, ref_du) = time_cuda(lambda: streaming(q, k), 0, 1)
            if ms < 2000:
                ms, (ref_ds, ref_du) = time_cuda(lambda: streaming(q, k), 1, 3)
        except Exception as exc:  # keep the rows measured so far; the table says what broke
            add("torch streaming", None, note=f"failed: {type(exc).__name__}: {exc}"[:120])
            failures.append(f"{shape.name}: torch streaming raised {type(exc).__name__}")
        else:
            agree = max(max_relative_difference(ds, ref_ds), max_relative_difference(du, ref_du))
            add("torch streaming", ms, note=f"fused vs torch max rel diff {agree:.1e}")
            if not agree <= AGREEMENT_RTOL:
                failures.append(f"{shape.name}: fused vs torch streaming {agree:.2e}")

    # The largest length whose per-head L x L matrices fit: 32768, 16384, 8192 at the default.
    for at in (length, length // 2, length // 4):
        qa, ka = q[:, :at].contiguous(), k[:, :at].contiguous()
        try:
            ms, (ref_ds, ref_du) = time_cuda(lambda qa=qa, ka=ka: materialized_statistics(qa, ka), 1, 1)
        except torch.cuda.OutOfMemoryError:
            ms = None
        if ms is None:
            torch.cuda.empty_cache()
            add("materialized", None, at=at, note="out of memory")
            continue
        f_ds, f_du = fused(qa, ka, **vars(cfg))
        agree = max(max_relative_difference(f_ds, ref_ds), max_relative_difference(f_du, ref_du))
        add("materialized", ms, at=at, note=f"fused vs materialized max rel diff {agree:.1e}")
        if not agree <= AGREEMENT_RTOL:
            failures.append(f"{shape.name}: fused vs materialized at L={at}: {agree:.2e}")
        break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="pip install triton if missing")
    parser.add_argument("--length", type=int, default=32768)
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=["8b", "70b"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-sweep", dest="sweep", action="store_false", help="default tiles only")
    parser.add_argument("--output", help="also write the markdown table to this file")
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16",
                        help="q and k dtype of the statistics kernels (default: the scorer's on CUDA)")
    parser.add_argument("--limits", action="store_true",
                        help="print the limit per window of every GPU in HARDWARE and exit (no GPU needed)")
    args = parser.parse_args(argv)
    if args.limits:
        print(limits_table(args.length, args.dtype))
        return 0
    if not torch.cuda.is_available():
        print("gpu_bench.py needs a CUDA GPU; the CPU tests are tests/triton (Triton interpreter).")
        return 2
    _ensure_triton(args.install)
    if importlib.util.find_spec("longattn_assets") is None:
        # Run from a checkout without `pip install -e .`: the package sits one level up.
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import triton

    props = torch.cuda.get_device_properties(0)
    hw = detect_hardware(props.name, props.multi_processor_count)
    header = [
        f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; device: {props.name} "
        f"({props.multi_processor_count} SMs, sm_{props.major}{props.minor}); torch {torch.__version__}; "
        f"triton {triton.__version__}; q/k {args.dtype}",
        "limit: unknown GPU, no limit (add it to HARDWARE in this script)" if hw is None else
        f"limit: {hw.name}: {hw.dense_flops[args.dtype] / 1e12:g} TFLOP/s dense {args.dtype}; exp "
        f"{hw.exp_per_clock_per_sm}/clk/SM x {hw.sms} SMs x {hw.clock_hz / 1e9:.2f} GHz = "
        f"{hw.exp_rate / 1e12:.2f} T exp/s",
        "",
        "| model | method | L | ms/window | tokens/s | of limit | note |",
        "|---|---|---|---|---|---|---|",
    ]
    rows: list[str] = []
    failures: list[str] = []
    for key in args.shapes:
        bench_shape(SHAPES[key], args, hw, rows, failures, torch.device("cuda"))
        torch.cuda.empty_cache()  # the shape's weights are gone with bench_shape's frame
    table = "\n".join(header + rows)
    print("\n" + table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(table + "\n")
    if failures:
        print("AGREEMENT FAILED:", *failures, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
