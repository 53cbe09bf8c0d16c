"""The GPU check: one command for a lent GPU, the most important answers first (docs/gpu.md).

    PYTHONPATH=. python3 benchmarks/gpu_check.py --output "$OUT"      # on the GPU machine
    python benchmarks/gpu_check.py --dry-run --output /tmp/gpu-check   # the same code on the CPU
    python benchmarks/gpu_check.py --limits [--dtype float32]          # expected ms per window

Four parts, in this order; after each one <output>/gpu_check.md and gpu_check.json are
rewritten with everything measured so far, so a run cut short still returns its first answers:

1. correctness: per head, the fused Triton kernel against the torch streaming kernel on the
   GPU and against the CPU path (the exact arithmetic, fp32), for Llama-3.1-8B, -70B and
   SmolLM2-135M shapes at L = 2,048, 8,192 and 32,768, bf16 and fp32 q/k, pass or fail at
   DESIGN.md's 1e-4; and the scorer giving a window the same bits alone and in a batch.
2. kernel speed: ms per 32K window and tokens/s of the fused kernel (8B, 70B), a short tile
   sweep, against the limit of the detected GPU.
3. scorer: Layer0Scorer end to end on windows read from a windowed_chunks Parquet file, with
   the time spent reading, copying token ids, projecting and in the kernel.
4. memory: peak GPU memory of scoring one window of 32K and of 128K tokens.

Each shape's layer 0 (embedding, RMSNorm, q/k projections, RoPE with the model's rope
settings) has random weights built in memory: nothing is downloaded. The check imports only
what the device image has (torch, triton, transformers, numpy, pyarrow, tokenizers):
tests/triton/test_gpu_check.py runs the dry run without Dagster, DuckDB, Polars, gguf, the
embedded model and the project's other packages the image lacks. ``--dry-run`` runs every
part on the CPU at tiny shapes, the kernel through Triton's interpreter.

Exit status: 0 when every check passes; 1 when one fails, a part raises or the time budget
left something out; 2 without CUDA.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

if importlib.util.find_spec("longattn_assets") is None:  # a checkout run without PYTHONPATH=.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The package first: it pins ATen's CPU kernels before torch computes anything, which the
# dry run's CPU scorer checks.
import longattn_assets  # noqa: E402, F401, I001
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from longattn_assets.model.families import gguf_llama_family  # noqa: E402
from longattn_assets.model.layer0 import Layer0Weights  # noqa: E402
from longattn_assets.model.source import ModelSource  # noqa: E402
from longattn_assets.scoring.kernel_choice import choose_statistics_kernel  # noqa: E402
from longattn_assets.scoring.projections import Layer0Projector  # noqa: E402
from longattn_assets.scoring.scorer import Layer0Scorer, WindowScore  # noqa: E402
from longattn_assets.scoring.statistics import long_range_statistics  # noqa: E402
from longattn_assets.scoring.token_windows import token_windows  # noqa: E402
from longattn_assets.scoring.triton_configs import (  # noqa: E402
    LaunchConfig,
    device_capability,
    launch_config,
)
from longattn_assets.storage import write_text  # noqa: E402
from longattn_assets.windows.chunking import WINDOWED_CHUNKS_SCHEMA  # noqa: E402
from longattn_assets.windows.ids import tokens_hash  # noqa: E402

DESIGN_RTOL = 1e-4  # DESIGN.md 4: scores equal the reference to 1e-4 relative, per head
BOS_TOKEN_ID = 1  # random embeddings: any id of the vocabulary serves
# q and k entries of std 2, logits of std 4: peaked attention that makes the online softmax
# rescale often (as the kernel tests' 2 * randn), not the near-uniform attention of std 1.
QK_STD = 2.0

# ---------------------------------------------------------------------------------------
# Model shapes and what the check runs on them


@dataclass(frozen=True)
class ModelShape:
    name: str
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    rope_theta: float
    rope_scaling: dict | None
    max_position_embeddings: int
    rms_eps: float = 1e-5


# Llama 3.1 rope scaling, as in both models' config.json.
LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}
SHAPES = {
    "8b": ModelShape("Llama-3.1-8B", 4096, 32, 8, 128, 128256, 500000.0, LLAMA3_SCALING, 131072),
    "70b": ModelShape("Llama-3.1-70B", 8192, 64, 8, 128, 128256, 500000.0, LLAMA3_SCALING, 131072),
    "smollm2": ModelShape("SmolLM2-135M", 576, 9, 3, 64, 49152, 100000.0, None, 8192),
}


def tiny(shape: ModelShape) -> ModelShape:
    """The dry run's shape: two kv heads with the same group and head dim (so the same launch
    config, rope type and GQA indexing), a small hidden size, vocabulary and RoPE table (the
    projector tabulates max_position_embeddings positions, correctly rounded: slow on a CPU;
    transformers wants more than llama3's original 8192)."""
    group = shape.heads // shape.kv_heads
    scaling = shape.rope_scaling or {}
    positions = 2 * scaling.get("original_max_position_embeddings", 256)
    return replace(shape, name=f"{shape.name} (tiny)", hidden=64, vocab=512, heads=2 * group,
                   kv_heads=2, max_position_embeddings=positions)


@dataclass(frozen=True)
class Plan:
    shapes: dict[str, ModelShape]
    lengths: tuple[int, ...]  # correctness, L = window + BOS
    all_heads_on_cpu_up_to: int  # longer: the CPU reference scores the first kv group's heads
    speed_length: int
    sweep: tuple[LaunchConfig, ...]  # tried after the launch config table's entry
    warmup: int
    repeats: int
    matmul_size: int  # n of the n x n x n bf16 matmul that measures the reachable MMA rate
    scorer_windows: tuple[tuple[int, int], ...]  # (tokens per window, windows)
    memory_windows: tuple[int, ...]  # tokens per window
    speed_shapes: tuple[str, ...] = ("8b", "70b")
    memory_shapes: tuple[str, ...] = ("8b", "70b")


SWEEP = (
    LaunchConfig(128, 64, 8, 3), LaunchConfig(128, 64, 4, 3), LaunchConfig(128, 128, 8, 3),
    LaunchConfig(64, 64, 4, 3), LaunchConfig(128, 32, 4, 4), LaunchConfig(64, 128, 4, 3),
)
GPU_PLAN = Plan(
    shapes=SHAPES, lengths=(2048, 8192, 32768), all_heads_on_cpu_up_to=8192, speed_length=32768,
    sweep=SWEEP, warmup=3, repeats=10, matmul_size=8192,
    scorer_windows=((32768, 16), (2048, 256)), memory_windows=(32768, 131072),
)
DRY_RUN_PLAN = Plan(
    shapes={key: tiny(shape) for key, shape in SHAPES.items()}, lengths=(64, 200),
    all_heads_on_cpu_up_to=64, speed_length=128, sweep=SWEEP[:2], warmup=1, repeats=1,
    matmul_size=256, scorer_windows=((127, 2), (63, 3)), memory_windows=(127, 255),
)

# ---------------------------------------------------------------------------------------
# The limit of a GPU: peak rates (docs/gpu.md gives the source of every number)


@dataclass(frozen=True)
class Hardware:
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


def work_limit(
    length: int, heads: int, head_dim: int, hw: Hardware, dtype: str = "bfloat16",
    mma_rate: float | None = None,
) -> Limit:
    """Lower bound on the statistics time: QK^T at the dtype's dense rate (or ``mma_rate``)
    and one exp per pair."""
    pairs = causal_long_range_pairs(length) * heads
    flops = 2.0 * head_dim * pairs
    rate = mma_rate or hw.dense_flops[dtype]
    return Limit(flops, float(pairs), flops / rate, pairs / hw.exp_rate)


def limits_table(length: int = 32768, dtype: str = "bfloat16") -> str:
    """Expected (limit) ms per window of the 8B and 70B shapes on each GPU of the table."""
    shapes = [SHAPES["8b"], SHAPES["70b"]]
    lines = [
        f"| GPU | SMs | dense {dtype} TFLOP/s | exp T/s | "
        + " | ".join(f"{shape.name} ms/window" for shape in shapes) + " |",
        "|---|---|---|---|" + "---|" * len(shapes),
    ]
    for hw in HARDWARE:
        ms = [work_limit(length, s.heads, s.head_dim, hw, dtype).seconds * 1e3 for s in shapes]
        lines.append(
            f"| {hw.name} | {hw.sms} | {hw.dense_flops[dtype] / 1e12:g} | {hw.exp_rate / 1e12:.2f} | "
            + " | ".join(f"{m:.2f}" for m in ms) + " |"
        )
    return "\n".join(lines)

# ---------------------------------------------------------------------------------------
# Timing, memory and the report


class Device:
    """Timing and memory on the checked device: CUDA events and the caching allocator's
    statistics, or on the CPU (dry run) the wall clock and the process's peak RSS."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def mark(self) -> object:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def elapsed_ms(self, start: object, end: object) -> float:
        if not self.cuda:
            return (end - start) * 1e3
        end.synchronize()
        return start.elapsed_time(end)

    def time_ms(self, fn: Callable[[], object], warmup: int, repeats: int) -> tuple[float, object]:
        """Median ms of ``fn`` over ``repeats`` runs after ``warmup`` runs, and its last result."""
        out = None
        for _ in range(warmup):
            out = fn()
        self.sync()
        times = []
        for _ in range(repeats):
            start = self.mark()
            out = fn()
            times.append(self.elapsed_ms(start, self.mark()))
        return statistics.median(times), out

    def reset_peak(self) -> None:
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    def allocated(self) -> int:
        return torch.cuda.memory_allocated(self.device) if self.cuda else 0

    def peak(self) -> int:
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Part:
    title: str
    columns: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # per-head errors etc.: JSON only
    summary: str = ""
    status: str = "running"
    seconds: float = 0.0

    def raised(self, case: str, exc: Exception) -> None:
        """A case that raised: a failure, and the first one's traceback among the notes."""
        if not any(note.startswith("```") for note in self.notes):
            self.notes.append(f"```\n{case}:\n{traceback.format_exc()[-4000:]}```")
        self.failures.append(f"{case}: {type(exc).__name__}: {str(exc)[:300]}")

    def markdown(self) -> str:
        lines = [f"## {self.title}: {self.status} ({self.seconds:.1f} s)", ""]
        if self.summary:
            lines += [self.summary, ""]
        if self.rows:
            lines.append("| " + " | ".join(self.columns) + " |")
            lines.append("|" + "---|" * len(self.columns))
            lines += ["| " + " | ".join(str(row.get(c, "")) for c in self.columns) + " |" for row in self.rows]
            lines.append("")
        lines += [f"- {note}" for note in self.notes]
        lines += [f"- FAILED: {failure}" for failure in self.failures]
        if self.skipped:
            lines.append(f"- skipped (over the time budget): {', '.join(self.skipped)}")
        return "\n".join(lines).rstrip() + "\n"


class Report:
    """Everything measured so far, rewritten to <output>/gpu_check.{md,json} after each part."""

    def __init__(self, output: Path, environment: dict[str, str]) -> None:
        self.output = output
        self.environment = environment
        self.parts: list[Part] = []
        self.started = time.perf_counter()

    @property
    def passed(self) -> bool:
        return all(part.status == "passed" for part in self.parts)

    @property
    def verdict(self) -> str:
        if any(part.status in ("failed", "error") for part in self.parts):
            return "FAILED"
        return "passed" if self.passed else "incomplete (over the time budget)"

    def add(self, part: Part) -> None:
        self.parts.append(part)
        self.write()

    def markdown(self) -> str:
        head = ["# GPU check", ""] + [f"- {key}: {value}" for key, value in self.environment.items()]
        return "\n".join(head) + "\n\n" + "\n".join(part.markdown() for part in self.parts)

    def write(self) -> None:
        self.output.mkdir(parents=True, exist_ok=True)
        write_text(self.markdown(), self.output / "gpu_check.md")
        record = {
            "environment": self.environment,
            "seconds": round(time.perf_counter() - self.started, 1),
            "passed": self.passed,
            "verdict": self.verdict,
            "parts": [asdict(part) for part in self.parts],
        }
        write_text(json.dumps(record, indent=1, default=str) + "\n", self.output / "gpu_check.json")

    def summary(self) -> str:
        seconds = time.perf_counter() - self.started
        lines = [
            f"GPU check on {self.environment['device']}: {self.verdict} "
            f"in {seconds:.0f} s (torch {self.environment['torch']}, triton {self.environment['triton']})"
        ]
        for part in self.parts:
            lines.append(f"{part.title}: {part.status}. {part.summary}")
            lines += [f"    FAILED: {failure}" for failure in part.failures[:5]]
        lines.append(f"Written: {self.output / 'gpu_check.md'}, {self.output / 'gpu_check.json'}")
        return "\n".join(lines)

# ---------------------------------------------------------------------------------------
# The check's state: device, random layers and scorers, shared by the parts


class Check:
    def __init__(self, plan: Plan, device: torch.device, budget_s: float) -> None:
        # Imported here, after main() has chosen Triton's interpreter or not.
        from longattn_assets.scoring.triton_statistics import long_range_statistics_triton

        self.fused = long_range_statistics_triton
        self.plan = plan
        self.dev = Device(device)
        self.deadline = time.monotonic() + budget_s
        self.capability = device_capability(device)
        self.hardware = None
        if self.dev.cuda:
            props = torch.cuda.get_device_properties(device)
            self.hardware = detect_hardware(props.name, props.multi_processor_count)
        self.matmul_rate = self._matmul_rate()
        self.torch_ms: dict[tuple[str, torch.dtype, int], float] = {}  # part 1, for part 2
        self._weights: dict[str, Layer0Weights] = {}
        self._scorers: dict[str, Layer0Scorer] = {}

    def over_budget(self) -> bool:
        return time.monotonic() > self.deadline

    def _matmul_rate(self) -> float:
        """bf16 FLOP/s of one large matmul on this device: the MMA rate a kernel can reach."""
        n = self.plan.matmul_size
        gen = torch.Generator(device=self.dev.device).manual_seed(0)
        a, b = (torch.randn(n, n, generator=gen, device=self.dev.device, dtype=torch.bfloat16) for _ in range(2))
        ms, _ = self.dev.time_ms(lambda: a @ b, self.plan.warmup, self.plan.repeats)
        return 2.0 * n**3 / (ms / 1e3)

    def weights(self, key: str) -> Layer0Weights:
        if key not in self._weights:
            self._weights[key] = random_layer0(self.plan.shapes[key], self.dev.device)
        return self._weights[key]

    def projector(self, key: str, dtype: torch.dtype) -> Layer0Projector:
        return Layer0Projector(
            self.weights(key), device=self.dev.device, dtype=dtype, add_bos=True, bos_token_id=BOS_TOKEN_ID
        )

    def scorer(self, key: str) -> Layer0Scorer:
        """The scorer users get: bf16 and kernel 'auto' on CUDA; on the CPU (dry run) fp32,
        its only dtype there, and the Triton kernel through the interpreter."""
        if key not in self._scorers:
            self._scorers[key] = Layer0Scorer(
                self.weights(key), device=str(self.dev.device),
                dtype=torch.bfloat16 if self.dev.cuda else torch.float32,
                kernel="auto" if self.dev.cuda else "triton", bos_token_id=BOS_TOKEN_ID,
            )
        return self._scorers[key]

    def window(self, key: str, tokens: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng([tokens, seed])
        return rng.integers(0, self.plan.shapes[key].vocab, tokens, dtype=np.int32)

    def table_config(self, dtype: torch.dtype, head_dim: int) -> tuple[LaunchConfig | None, str]:
        """The launch config table's entry for this device, or None and why the scorer would
        run the torch kernel instead."""
        try:
            return launch_config(self.capability, dtype, head_dim), ""
        except ValueError as exc:
            return None, str(exc)


def random_layer0(shape: ModelShape, device: torch.device, seed: int = 0) -> Layer0Weights:
    """Random layer-0 weights of a shape, float32 on the CPU as Layer0Weights holds them
    (drawn on the device: a 70B embedding is a billion numbers)."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def randn(*size: int, std: float) -> torch.Tensor:
        return torch.randn(*size, generator=gen, device=device).mul_(std).cpu()

    return Layer0Weights(
        embed_tokens=randn(shape.vocab, shape.hidden, std=0.02),
        input_layernorm=1.0 + randn(shape.hidden, std=0.1),
        rms_norm_eps=shape.rms_eps,
        # Unit-variance RMSNorm output times std QK_STD / sqrt(hidden): q, k entries of std QK_STD.
        q_proj=randn(shape.heads * shape.head_dim, shape.hidden, std=QK_STD * shape.hidden**-0.5),
        k_proj=randn(shape.kv_heads * shape.head_dim, shape.hidden, std=QK_STD * shape.hidden**-0.5),
        q_bias=None,
        k_bias=None,
        num_heads=shape.heads,
        num_kv_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        rope_theta=shape.rope_theta,
        rope_scaling=shape.rope_scaling,
        max_position_embeddings=shape.max_position_embeddings,
        fingerprint=f"random-{shape.name}-{seed}",
        bytes_read=0,
        source=ModelSource(spec=f"random {shape.name}", kind="random", path=Path(".")),
        # a Llama whose layer 0 is the scored layer, with the shape's rope settings
        family=gguf_llama_family(
            layer=0, num_layers=1, hidden_size=shape.hidden, num_heads=shape.heads,
            num_kv_heads=shape.kv_heads, head_dim=shape.head_dim, rms_norm_eps=shape.rms_eps,
            rope_theta=shape.rope_theta, max_position_embeddings=shape.max_position_embeddings,
            rope_scaling=shape.rope_scaling,
        ),
    )


def relative_errors(got: torch.Tensor, want: torch.Tensor) -> list[float]:
    """|got - want| / |want| per head, over the heads ``want`` has."""
    got, want = got.double().cpu()[: len(want)], want.double().cpu()
    return ((got - want).abs() / want.abs()).tolist()


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")

# ---------------------------------------------------------------------------------------
# 1. Correctness


CORRECTNESS_COLUMNS = [
    "model", "q/k", "L", "heads vs CPU", "fused config", "fused vs CPU (ds / du)",
    "torch vs CPU (ds / du)", "fused vs torch (ds / du)", "torch ms", "CPU s", "result",
]


def check_correctness(check: Check) -> Part:
    part = Part("1. Correctness", CORRECTNESS_COLUMNS)
    for key, shape in check.plan.shapes.items():
        for dtype in (torch.bfloat16, torch.float32):
            projector = check.projector(key, dtype)
            for length in check.plan.lengths:
                if check.over_budget():
                    part.skipped.append(f"{shape.name} {dtype_name(dtype)} L={length}")
                    continue
                q, k = projector.project_one(check.window(key, length - 1))
                compare_kernels(check, part, key, dtype, q, k)
    check_batch_bits(check, part)
    cases = part.details.get("errors", [])
    worst = {
        name: max((max(e[name]["ds"] + e[name]["du"]) for e in cases if name in e), default=None)
        for name in ("fused vs CPU", "torch vs CPU")
    }
    passed = sum(row["result"] == "pass" for row in part.rows)
    part.summary = (
        f"{passed}/{len(part.rows)} cases within {DESIGN_RTOL:g} per head; worst relative error "
        + ", ".join(f"{name} {value:.1e}" for name, value in worst.items() if value is not None)
        + f"; {part.details['batch_bits']}"
    )
    return part


def compare_kernels(check: Check, part: Part, key: str, dtype: torch.dtype, q, k) -> None:
    """One case: the three paths' per-head (ds, du) and their relative differences."""
    shape = check.plan.shapes[key]
    length = q.shape[1]
    group = shape.heads // shape.kv_heads
    # Long windows: the CPU path scores the first kv group's heads only (same work per head).
    heads, kv_heads = (shape.heads, shape.kv_heads) if length <= check.plan.all_heads_on_cpu_up_to else (group, 1)
    start = time.perf_counter()
    cpu = long_range_statistics(q[:heads].float().cpu(), k[:kv_heads].float().cpu())
    cpu_s = time.perf_counter() - start
    torch_ms, on_device = check.dev.time_ms(lambda: long_range_statistics(q, k), 0, 1)
    check.torch_ms[(key, dtype, length)] = torch_ms
    errors = {"torch vs CPU": pair_errors(on_device, cpu)}
    case = f"{shape.name} {dtype_name(dtype)} L={length}"
    config, why = check.table_config(dtype, shape.head_dim)
    worst = 0.0
    if config is not None:
        try:
            fused = check.fused(q, k, **asdict(config))
        except Exception as exc:  # noqa: BLE001 - e.g. no compile or launch on this GPU: say so, go on
            part.raised(f"{case}: fused kernel", exc)
            worst = float("inf")
        else:
            errors["fused vs CPU"] = pair_errors(fused, cpu)
            errors["fused vs torch"] = pair_errors(fused, on_device)
    worst = max(worst, *(max(e["ds"] + e["du"]) for e in errors.values()))
    if not worst <= DESIGN_RTOL and worst != float("inf"):
        part.failures.append(f"{case}: relative error {worst:.2e} > {DESIGN_RTOL:g}")

    def cell(name: str) -> str:
        e = errors.get(name)
        return "-" if e is None else f"{max(e['ds']):.1e} / {max(e['du']):.1e}"

    part.rows.append({
        "model": shape.name, "q/k": dtype_name(dtype), "L": length,
        "heads vs CPU": "all" if heads == shape.heads else f"first kv group ({heads})",
        "fused config": str(config) if config else f"none: {why}",
        "fused vs CPU (ds / du)": cell("fused vs CPU"), "torch vs CPU (ds / du)": cell("torch vs CPU"),
        "fused vs torch (ds / du)": cell("fused vs torch"), "torch ms": f"{torch_ms:.1f}",
        "CPU s": f"{cpu_s:.2f}", "result": "pass" if worst <= DESIGN_RTOL else "FAIL",
    })
    part.details.setdefault("errors", []).append({"case": case, **errors})


def pair_errors(got: tuple[torch.Tensor, torch.Tensor], want: tuple[torch.Tensor, torch.Tensor]) -> dict:
    return {"ds": relative_errors(got[0], want[0]), "du": relative_errors(got[1], want[1])}


def score_bits(score: WindowScore) -> bytes:
    return np.array([score.ds, score.du]).tobytes() + score.ds_heads.tobytes() + score.du_heads.tobytes()


def check_batch_bits(check: Check, part: Part) -> None:
    """The scorer gives a window the same bits alone, in a batch and in another order."""
    if check.over_budget():
        part.skipped.append("the same bits alone and in a batch")
        part.details["batch_bits"] = "batch bits not checked"
        return
    scorer = check.scorer("8b")
    first = check.plan.lengths[0] - 1
    windows = [check.window("8b", n, seed) for seed, n in enumerate((first, first // 2, first // 3, first))]
    alone = [score_bits(scorer.score([w])[0]) for w in windows]
    batched = [score_bits(s) for s in scorer.score(windows)]
    backwards = [score_bits(s) for s in scorer.score(windows[::-1])][::-1]
    same = alone == batched == backwards
    part.details["batch_bits"] = (
        f"scorer ({scorer.kernel_description}, {dtype_name(scorer.dtype)}) gives {len(windows)} windows "
        f"of {first // 3}-{first} tokens the same bits alone, in a batch and reversed: {'yes' if same else 'NO'}"
    )
    part.notes.append(part.details["batch_bits"])
    if not same:
        part.failures.append("a window's scores differ alone and in a batch")
    if scorer.kernel != "triton":  # the fused kernel failed its probe: the warning says why
        part.failures.append(f"the scorer fell back to the torch kernel on {scorer.device}")

# ---------------------------------------------------------------------------------------
# 2. Kernel speed


SPEED_COLUMNS = ["model", "L", "kernel", "config", "ms/window", "tokens/s", "of limit", "of limit at measured MMA rate"]


def measure_kernel_speed(check: Check) -> Part:
    part = Part("2. Kernel speed (bf16 q/k)", SPEED_COLUMNS)
    part.notes.append(
        "limit = max(2 D P / dense bf16 FLOP/s, P / exp2 rate), P = Hq * sum_{r=o}^{L-1} (r + 1) "
        "causal (row, key) pairs of the long-range rows (o = L - 3 * (L // 4)): the QK^T dots on "
        "the tensor cores and one exp2 per pair on the MUFU, which at best overlap. 'at measured "
        "MMA rate' uses the bf16 matmul rate measured at the start instead of the datasheet's."
    )
    for key in check.plan.speed_shapes:
        if check.over_budget():
            part.skipped.append(check.plan.shapes[key].name)
            continue
        q, k = check.projector(key, torch.bfloat16).project_one(check.window(key, check.plan.speed_length - 1))
        time_configs(check, part, key, q, k)
    fastest: dict[str, dict] = {}
    for row in part.rows:
        if row["kernel"] == "fused" and row["ms/window"] != "-":
            if row["model"] not in fastest or float(row["ms/window"]) < float(fastest[row["model"]]["ms/window"]):
                fastest[row["model"]] = row
    part.summary = "; ".join(
        f"{model}: {row['ms/window']} ms/window, {row['tokens/s']} tokens/s ({row['of limit']} of limit) "
        f"with {row['config']}" for model, row in fastest.items()
    )
    return part


def time_configs(check: Check, part: Part, key: str, q: torch.Tensor, k: torch.Tensor) -> None:
    """The table's config first, then the sweep's others; the torch kernel's time from part 1."""
    shape, plan = check.plan.shapes[key], check.plan
    length = q.shape[1]
    table, why = check.table_config(torch.bfloat16, shape.head_dim)
    if table is None:
        part.failures.append(f"{shape.name}: no launch config for bf16 on this device: {why}")
    candidates = ([table] if table else []) + [c for c in plan.sweep if c != table]
    for config in candidates:
        if check.over_budget():
            part.skipped.append(f"{shape.name} {config}")
            continue
        try:
            ms, _ = check.dev.time_ms(lambda c=config: check.fused(q, k, **asdict(c)), plan.warmup, plan.repeats)
        except Exception as exc:  # noqa: BLE001 - a swept config may not fit this GPU; the table's must
            if config == table:
                part.raised(f"{shape.name}: the table's {config}", exc)
            part.rows.append(speed_row(check, shape, length, "fused", f"{config}: {type(exc).__name__}", None))
            continue
        label = f"{config} (table)" if config == table else str(config)
        part.rows.append(speed_row(check, shape, length, "fused", label, ms))
    torch_ms = check.torch_ms.get((key, torch.bfloat16, length))
    part.rows.append(speed_row(check, shape, length, "torch streaming (part 1, one run)", "block 512", torch_ms))
    if check.hardware is not None:
        limit = work_limit(length, shape.heads, shape.head_dim, check.hardware)
        part.rows.append(speed_row(check, shape, length, "limit", (
            f"QK^T {limit.flops / 1e12:.2f} TFLOP = {limit.mma_s * 1e3:.2f} ms; "
            f"{limit.exps / 1e9:.2f} G exp2 = {limit.exp_s * 1e3:.2f} ms"), limit.seconds * 1e3))


def speed_row(check: Check, shape: ModelShape, length: int, kernel: str, config: str, ms: float | None) -> dict:
    row = {"model": shape.name, "L": length, "kernel": kernel, "config": config,
           "ms/window": "-", "tokens/s": "-", "of limit": "-", "of limit at measured MMA rate": "-"}
    if ms is None:
        return row
    row.update({"ms/window": f"{ms:.2f}", "tokens/s": f"{length / ms * 1e3:,.0f}"})
    if check.hardware is not None:
        limit = work_limit(length, shape.heads, shape.head_dim, check.hardware)
        measured = work_limit(length, shape.heads, shape.head_dim, check.hardware, mma_rate=check.matmul_rate)
        row["of limit"] = f"{limit.seconds * 1e3 / ms:.0%}"
        row["of limit at measured MMA rate"] = f"{measured.seconds * 1e3 / ms:.0%}"
    return row

# ---------------------------------------------------------------------------------------
# 3. The scorer end to end


SCORER_COLUMNS = [
    "window tokens", "windows", "end to end s", "tokens/s", "read", "token copy", "projection",
    "kernel", "rest", "GPU busy",
]


def measure_scorer(check: Check) -> Part:
    part = Part("3. Scorer end to end (Llama-3.1-8B shape)", SCORER_COLUMNS)
    part.notes.append(
        "Layer0Scorer (the scorer's dtype and kernel on this device) on a random-weight "
        "layer 0: embedding, RMSNorm, q/k projections, RoPE with llama3 scaling, statistics. "
        "End to end: read the token_ids of a windowed_chunks Parquet file, score every window, "
        "wait for the device. The phases come from a second pass over the same windows, one "
        "window at a time with the scorer's own pieces, timed with CUDA events; their shares are "
        "of that pass's time plus the read. token copy: the window's ids to the device (a bare copy "
        "of the same ids, timed beside Layer0Projector.project_one's own and left out of the "
        "pass's time); projection: project_one less that copy; kernel: the statistics; rest: host "
        "work, result copies, waits."
    )
    part.notes.append(
        "Copies do not overlap compute: the scorer copies each window's ids with a blocking copy "
        "from pageable memory and reads every window's results back with .cpu(), which waits for "
        "the device. GPU busy = (token copy + projection + kernel) / the pass's time: the rest is "
        "what that serialization and the host's work cost."
    )
    with tempfile.TemporaryDirectory() as tmp:
        for tokens, count in check.plan.scorer_windows:
            if check.over_budget():
                part.skipped.append(f"{count} windows of {tokens}")
                continue
            path = write_windows_file(Path(tmp) / f"windows-{tokens}.parquet",
                                      [check.window("8b", tokens, seed) for seed in range(count)])
            part.rows.append(time_scorer(check, check.scorer("8b"), path))
    part.summary = "; ".join(
        f"{row['window tokens']}-token windows {row['tokens/s']} tokens/s (GPU busy {row['GPU busy']})"
        for row in part.rows
    )
    return part


def write_windows_file(path: Path, windows: list[np.ndarray]) -> Path:
    """A windowed_chunks file (the scorer's input schema) holding these token windows."""
    n = len(windows)
    lengths = np.array([len(w) for w in windows], dtype=np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32())
    columns = {
        "data_id": [f"gpu-check-{i:05d}" for i in range(n)],
        "doc_id": [f"gpu-check-doc-{i:05d}" for i in range(n)],
        "category": ["gpu-check"] * n,
        "shard": ["00000"] * n,
        "window_index": list(range(n)),
        "token_start": [0] * n,
        "n_tokens": lengths,
        "token_ids": pa.ListArray.from_arrays(offsets, pa.array(np.concatenate(windows), pa.int32())),
        "tokens_hash": [tokens_hash(w) for w in windows],
        "content": [""] * n,
        "tokenizer": ["random"] * n,
    }
    pq.write_table(pa.table(columns, schema=WINDOWED_CHUNKS_SCHEMA), path, compression="zstd")
    return path


def time_scorer(check: Check, scorer: Layer0Scorer, path: Path) -> dict:
    """End to end through the scorer, then the same windows again phase by phase."""
    dev = check.dev
    scorer.score(token_windows(pq.read_table(path, columns=["token_ids"]).column("token_ids"))[:1])  # warm
    dev.sync()
    start = time.perf_counter()
    windows = token_windows(pq.read_table(path, columns=["token_ids"]).column("token_ids"))
    read_s = time.perf_counter() - start
    scorer.score(windows)
    dev.sync()
    total_s = time.perf_counter() - start
    tokens = sum(len(w) for w in windows)
    phases = time_phases(check, scorer, windows)
    phased_s = read_s + phases["wall"]

    def share(name: str) -> str:
        seconds = read_s if name == "read" else phases[name]
        return f"{seconds:.3f} s ({seconds / phased_s:.0%})"

    return {
        "window tokens": len(windows[0]), "windows": len(windows), "end to end s": f"{total_s:.3f}",
        "tokens/s": f"{tokens / total_s:,.0f}", "read": share("read"), "token copy": share("copy"),
        "projection": share("projection"), "kernel": share("kernel"), "rest": share("rest"),
        "GPU busy": f"{(phases['wall'] - phases['rest']) / phases['wall']:.0%}",
    }


def time_phases(check: Check, scorer: Layer0Scorer, windows: list[np.ndarray]) -> dict[str, float]:
    """Seconds of each phase of scoring these windows one at a time as the scorer does: the
    token copy (a bare copy of the same ids beside the projector's own, left out of the wall
    time), the projection without it, the kernel, and the rest of the wall time (host work,
    result copies, waits)."""
    dev = check.dev
    statistics_kernel = choose_statistics_kernel(
        scorer.kernel, scorer.device, scorer.dtype, num_heads=scorer.weights.num_heads,
        num_kv_heads=scorer.weights.num_kv_heads, head_dim=scorer.weights.head_dim,
        block_size=scorer.block_size,
    ).compute  # the scorer's own choice, made the same way
    copy_ms = project_ms = kernel_ms = 0.0
    dev.sync()
    start = time.perf_counter()
    for window in windows:
        marks = [dev.mark()]
        torch.from_numpy(np.asarray(window, dtype=np.int64)).to(scorer.device)
        marks.append(dev.mark())
        q, k = scorer.projector.project_one(window)
        marks.append(dev.mark())
        ds, du = statistics_kernel(q, k)
        marks.append(dev.mark())
        ds.cpu(), du.cpu()
        copy_ms += dev.elapsed_ms(marks[0], marks[1])
        project_ms += dev.elapsed_ms(marks[1], marks[2])
        kernel_ms += dev.elapsed_ms(marks[2], marks[3])
    copy, kernel = copy_ms / 1e3, kernel_ms / 1e3
    wall = time.perf_counter() - start - copy  # the scorer makes one copy, the projector's
    projection = (project_ms - copy_ms) / 1e3
    return {"wall": wall, "copy": copy, "projection": projection, "kernel": kernel,
            "rest": max(wall - copy - projection - kernel, 0.0)}


# ---------------------------------------------------------------------------------------
# 4. Memory


MEMORY_COLUMNS = ["model", "window tokens", "peak GB per window", "resident GB (weights)", "q + k GB", "ms/window"]


def measure_memory(check: Check) -> Part:
    part = Part("4. Memory per window (scorer, bf16)" if check.dev.cuda else "4. Memory (dry run: process peak RSS)",
                MEMORY_COLUMNS)
    part.notes.append(
        "peak GB per window: the allocator's peak while Layer0Scorer.score([window]) runs, less "
        "what was allocated before (the weights on the device)." if check.dev.cuda else
        "On the CPU the column is the process's peak RSS so far, not a per-window figure."
    )
    for key in check.plan.memory_shapes:
        shape = check.plan.shapes[key]
        for tokens in check.plan.memory_windows:
            if check.over_budget():
                part.skipped.append(f"{shape.name} {tokens}")
                continue
            scorer = check.scorer(key)
            window = check.window(key, tokens)
            check.dev.reset_peak()
            base = check.dev.allocated()
            ms, _ = check.dev.time_ms(lambda w=window, s=scorer: s.score([w]), 0, 1)
            length = tokens + 1
            qk_bytes = (shape.heads + shape.kv_heads) * length * shape.head_dim * scorer.dtype.itemsize
            part.rows.append({
                "model": shape.name, "window tokens": tokens,
                "peak GB per window": f"{(check.dev.peak() - base) / 1e9:.2f}",
                "resident GB (weights)": f"{base / 1e9:.2f}", "q + k GB": f"{qk_bytes / 1e9:.2f}",
                "ms/window": f"{ms:.1f}",
            })
    part.summary = "; ".join(f"{r['model']} {r['window tokens']}: {r['peak GB per window']} GB" for r in part.rows)
    return part

# ---------------------------------------------------------------------------------------


PARTS: dict[str, tuple[str, Callable[[Check], Part]]] = {
    "correctness": ("1. Correctness", check_correctness),
    "speed": ("2. Kernel speed", measure_kernel_speed),
    "scorer": ("3. Scorer end to end", measure_scorer),
    "memory": ("4. Memory", measure_memory),
}


class Warnings(logging.Handler):
    """The package's warnings (e.g. the scorer falling back to the torch kernel, and why),
    kept for the report of the part during which they were logged."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def __enter__(self) -> Warnings:
        logging.getLogger("longattn_assets").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("longattn_assets").removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def take(self) -> list[str]:
        taken, self.messages = self.messages, []
        return taken


def run_part(check: Check, name: str, warnings: Warnings) -> Part:
    title, measure = PARTS[name]
    start = time.perf_counter()
    try:
        part = measure(check)
    except Exception as exc:  # noqa: BLE001 - one broken part must not cost the others their answers
        part = Part(title)
        part.raised("the part", exc)
        part.status = "error"
    part.seconds = time.perf_counter() - start
    part.notes += [f"warning logged: {message}" for message in warnings.take()]
    if part.status == "running":
        part.status = "failed" if part.failures else "incomplete" if part.skipped else "passed"
    check.dev.sync()
    if check.dev.cuda:
        torch.cuda.empty_cache()
    return part


def environment(check: Check, dry_run: bool) -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    env = {
        "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        "mode": "dry run: CPU, Triton's interpreter, tiny shapes" if dry_run else "GPU",
        "python": platform.python_version(),
        "torch": torch.__version__ + (f" (CUDA {torch.version.cuda})" if torch.version.cuda else ""),
        "triton": version("triton"),
        "transformers": version("transformers"),
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "device": f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
    }
    if check.dev.cuda:
        props = torch.cuda.get_device_properties(check.dev.device)
        env["device"] = (f"{props.name} ({props.multi_processor_count} SMs, sm_{props.major}{props.minor}, "
                         f"{props.total_memory / 2**30:.0f} GiB)")
    hw = check.hardware
    env["limit"] = "none (a GPU the HARDWARE table does not know)" if hw is None else (
        f"{hw.name}: {hw.dense_flops['bfloat16'] / 1e12:g} TFLOP/s dense bf16 (datasheet); exp2 "
        f"{hw.exp_per_clock_per_sm}/clk/SM x {hw.sms} SMs x {hw.clock_hz / 1e9:.2f} GHz = {hw.exp_rate / 1e12:.2f} T/s")
    env["measured bf16 matmul"] = f"{check.matmul_rate / 1e12:.1f} TFLOP/s (n = {check.plan.matmul_size})"
    return env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/gpu-check"),
                        help="folder for gpu_check.md and gpu_check.json (on the device: $OUT)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run every part on the CPU at tiny shapes, the kernel in Triton's interpreter")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS),
                        help="which parts to run, in the check's order (default: all)")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="skip what is left once this many seconds have passed (default: 7 minutes)")
    parser.add_argument("--limits", action="store_true",
                        help="print the limit per 32K window of every GPU in HARDWARE and exit (no GPU needed)")
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16",
                        help="the dtype of --limits")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.limits:
        print(limits_table(32768, args.dtype))
        return 0
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # read when the kernel's module is first imported
    elif not torch.cuda.is_available():
        print("gpu_check.py needs a CUDA GPU; --dry-run runs the same code on the CPU.")
        return 2
    device = torch.device("cpu") if args.dry_run else torch.device("cuda", torch.cuda.current_device())
    with Warnings() as warnings:
        check = Check(DRY_RUN_PLAN if args.dry_run else GPU_PLAN, device, args.budget_s)
        report = Report(args.output, environment(check, args.dry_run))
        for name in [name for name in PARTS if name in args.parts]:
            part = run_part(check, name, warnings)
            report.add(part)
            print(part.markdown(), flush=True)
    print(report.summary())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
