"""Where a window's time goes in the exact CPU scorer: shares per kind of work, and core use.

    python benchmarks/cpu_scorer_profile.py [--lengths 2048 8192] [--rev REV] [--workers 2]

One window of real text (stdlib sources, SmolLM2's tokenizer; BOS + L - 1 tokens) is
scored single-threaded in the main thread under ``torch.profiler``, after a warm-up on
another window of the same length (as in a long run: the token table holds the tokens
seen before, buffers exist). Each ATen call is put in one share by the stage it ran in
(the script wraps the scorer's functions in named ranges) and its name:

- embedding, RMSNorm, token table: the projection's work other than its product and
  rounding (embedding rows, RMSNorm, the table of projected tokens: gather, unique);
- RoPE: ``apply_rotary``;
- operand scaling/rounding: rounding rows to scaled integers (and, in the scorer before
  issue 20, the power-of-two scale passes after each product);
- float64 products: ``mm`` (the statistics' q k^T blocks and the q/k projection of tokens
  not seen before);
- product rounding to float32: the float64 -> float32 copy of each block of scores;
- exponentials, sums and masks: everything else in the statistics blocks;
- Python: wall time of the profiled call minus the ATen self time (interpreter, dispatch).

Then the scorer itself scores ``--batch`` windows of that length with ``--workers``
workers (with that many torch threads for a scorer that has no workers) and the process
CPU time over wall time x workers says how busy the cores were. ``--rev`` profiles the
package as it was at a git revision (``4e6e705``: the exact scorer before issue 20) in a
subprocess; its statistics ran in pool threads the profiler does not see, so this script
runs that revision's row-block function in the main thread the same way.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

SHARES = (
    "embedding, RMSNorm, token table", "RoPE", "operand scaling/rounding", "float64 products",
    "product rounding to float32", "exponentials, sums and masks", "Python",
)  # fmt: skip
PRODUCTS = {"aten::mm", "aten::bmm", "aten::addmm"}


def _scoped(name: str, fn):
    import torch

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.profiler.record_function(name):
            return fn(*args, **kwargs)

    return wrapper


def _instrument() -> dict:
    """Wrap the scorer's stages in named ranges; returns the functions that score one window."""
    import longattn_assets.scoring.projections as projections
    import longattn_assets.scoring.statistics as statistics
    from longattn_assets.scoring import exact

    projections.apply_rotary = _scoped("rope", projections.apply_rotary)
    projections.Layer0Projector._rms_norm = _scoped("embedding", projections.Layer0Projector._rms_norm)
    projections.Layer0Projector._qk = _scoped("embedding", projections.Layer0Projector._qk)
    if hasattr(exact, "scaled_integers"):  # the scorer since issue 20
        projections.scaled_integers = _scoped("rounding", exact.scaled_integers)
        statistics.scaled_integers = _scoped("rounding", exact.scaled_integers)

        def stats(q, k):
            return statistics.WindowStatistics(q, k).compute()

        return {"statistics": stats}
    # 4e6e705: integer_rows + exact_matmul (product, then two scale passes) per block.
    import math

    projections.integer_rows = _scoped("rounding", exact.integer_rows)
    statistics.integer_rows = _scoped("rounding", exact.integer_rows)

    def scaled_product(left, right):
        import torch

        sums = torch.matmul(left.values, right.values.transpose(-1, -2))
        with torch.profiler.record_function("rounding"):
            return sums * left.scale * right.scale.transpose(-1, -2)

    statistics.exact_matmul = scaled_product

    def stats(q, k):  # long_range_statistics of 4e6e705 without its thread pool
        hq, hkv, length, dim = statistics._check_shapes(q, k)
        offset = statistics._long_range_offset(length)
        q_bits, k_bits = exact.operand_bits(dim)
        rows_q = (q.float() * (math.log2(math.e) / math.sqrt(dim))).reshape(hkv, hq // hkv, length, dim)
        q_rows = [statistics.integer_rows(rows_q[h][:, offset:], q_bits) for h in range(hkv)]
        keys = [statistics.integer_rows(k[h].float(), k_bits) for h in range(hkv)]
        for h in range(hkv):
            for r0 in range(offset, length, 512):
                b = min(512, length - r0)
                statistics._row_block_sums(q_rows[h], keys[h], r0, b, length, offset, 512)

    return {"statistics": stats}


def _share(event, stack: list[str]) -> str:
    if "rope" in stack:
        return "RoPE"
    if event.name in PRODUCTS:
        return "float64 products"
    if "rounding" in stack:
        return "operand scaling/rounding"
    # (TorchScript's interpreter records its call's scalar arguments first: skip them)
    tensors = [dtype for dtype in event.input_dtypes if dtype != "Scalar"]
    if event.name in {"aten::copy_", "aten::_to_copy"} and tensors[:2] == ["float", "double"]:
        return "product rounding to float32"
    if "embedding" in stack or "projection" in stack:
        return "embedding, RMSNorm, token table"
    return "exponentials, sums and masks"


def profile_window(length: int, batch: int, workers: int) -> dict:
    import inspect

    import torch
    from cpu_scorer_bench import real_windows
    from torch.profiler import ProfilerActivity, profile, record_function

    from longattn_assets.model.layer0 import load_layer0
    from longattn_assets.model.tokenizer import load_tokenizer
    from longattn_assets.scoring.scorer import Layer0Scorer

    torch.set_num_threads(1)
    stages = _instrument()
    tokenizer = load_tokenizer("smollm2-135m")
    weights = load_layer0("smollm2-135m")
    options = {"workers": 1} if "workers" in inspect.signature(Layer0Scorer).parameters else {}
    scorer = Layer0Scorer(weights, device="cpu", bos_token_id=tokenizer.bos_token_id, **options)
    window, warm = real_windows(tokenizer, length - 1)

    def one(tokens):
        with torch.inference_mode():
            with record_function("projection"):
                q, k = scorer.projector.project_one(tokens)
            with record_function("statistics"):
                stages["statistics"](q, k)

    one(warm)
    best = min(_timed(lambda: one(window)) for _ in range(3))
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        start = time.perf_counter()
        one(window)
        profiled = time.perf_counter() - start
    shares: dict[str, float] = defaultdict(float)
    ranges = [e for e in prof.events() if not e.name.startswith("aten::")]
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        begin, end = event.time_range.start, event.time_range.end
        stack = [r.name for r in ranges if r.time_range.start <= begin and end <= r.time_range.end]
        shares[_share(event, stack)] += event.self_cpu_time_total / 1e6
    shares["Python"] = max(0.0, profiled - sum(shares.values()))
    total = sum(shares.values())
    use = _core_use(length, batch, workers, tokenizer, weights)
    return {"L": length, "seconds": best, "profiled": profiled,
            "shares": {k: shares[k] / total for k in SHARES}, **use}  # fmt: skip


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _core_use(length: int, batch: int, workers: int, tokenizer, weights) -> dict:
    """Wall and CPU time of the scorer on ``batch`` windows with ``workers`` cores."""
    import inspect

    import torch
    from cpu_scorer_bench import real_windows

    from longattn_assets.scoring.scorer import Layer0Scorer

    has_workers = "workers" in inspect.signature(Layer0Scorer).parameters
    torch.set_num_threads(workers)
    options = {"workers": workers} if has_workers else {}
    scorer = Layer0Scorer(weights, device="cpu", bos_token_id=tokenizer.bos_token_id, **options)
    windows = real_windows(tokenizer, length - 1, batch + 1)
    scorer.score(windows[-1:])
    start, cpu = time.perf_counter(), time.process_time()
    scorer.score(windows[:batch])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"batch": batch, "workers": workers, "batch_seconds": wall, "core_use": cpu / (wall * workers)}


def _run(root: Path | None, length: int, batch: int, workers: int) -> dict:
    env = dict(os.environ)
    if root is not None:
        env["PYTHONPATH"] = f"{root}{os.pathsep}{REPO / 'benchmarks'}"
        env["LONGATTN_CACHE_DIR"] = str(Path(root) / "cache")  # the old package's cache format
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(length), str(batch), str(workers)]
    done = subprocess.run(command, env=env, cwd=root or REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--rev", help="profile the package of this git revision instead of the checkout")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4, help="windows scored to measure core use")
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(profile_window(*args.child)))
        return
    with tempfile.TemporaryDirectory() as folder:
        root = None
        if args.rev:
            archive = Path(folder) / "rev.tar"
            subprocess.run(["git", "archive", "-o", str(archive), args.rev, "longattn_assets"], cwd=REPO, check=True)
            with tarfile.open(archive) as tar:
                tar.extractall(folder, filter="data")
            root = Path(folder)
        rows = [_run(root, length, args.batch, args.workers) for length in args.lengths]
    print(f"code: {args.rev or 'checkout'}; load average {os.getloadavg()[0]:.2f}")
    print("| L | s per window, 1 core | " + " | ".join(SHARES) + f" | core use, {args.workers} cores |")
    print("|---|---|" + "---|" * len(SHARES) + "---|")
    for row in rows:
        shares = " | ".join(f"{row['shares'][k]:.0%}" for k in SHARES)
        print(f"| {row['L']} | {row['seconds']:.3f} | {shares} | {row['core_use']:.0%} |")


if __name__ == "__main__":
    main()
