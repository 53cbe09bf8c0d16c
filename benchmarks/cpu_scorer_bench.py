"""CPU benchmark of the streaming layer-0 scorer against the materialized reference.

    python benchmarks/cpu_scorer_bench.py [--lengths 2048 4096 8192] [--long 32768]

On the embedded SmolLM2-135M (9 query heads, 3 kv heads, head_dim 64) and real text
(stdlib sources tokenized by its tokenizer), for each window length L it times:
- stream: ``Layer0Scorer.score([window])`` (projections + streaming statistics);
- reference: the same projections + ``materialized_statistics`` (full L x L per head);
- statistics: the streaming statistics alone on the projected q, k (what the floor bounds);
- floor: the bare blocked q k^T matmuls over exactly the (row block, key block) pairs the
  streaming pass visits (rows >= L/4, causal blocks), into a reused buffer, no softmax.
Times are the best of a few runs. Each measurement runs in its own subprocess. Memory is
reported twice: the process's whole-life peak RSS (getrusage ru_maxrss; includes Python,
torch, the tokenizer and loading the weights) and the increase of RSS during the measured
calls over RSS just before them (a thread samples RSS every millisecond, so a peak shorter
than that can be missed).
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import subprocess
import sys
import threading
import time

MODULES = ("inspect", "typing", "argparse", "dataclasses", "pathlib", "subprocess", "tarfile")


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _RssSampler:
    """Highest resident set size seen while the block runs, sampled every millisecond."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.highest = 0

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.highest = max(self.highest, self.process.memory_info().rss)
            self._stop.wait(0.001)

    def __enter__(self) -> _RssSampler:
        self.start = self.process.memory_info().rss
        self.highest = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _real_window(tokenizer, n_tokens: int) -> list[int]:
    import importlib

    ids: list[int] = []
    for name in MODULES:
        ids.extend(tokenizer.encode_batch([inspect.getsource(importlib.import_module(name))])[0])
        if len(ids) >= n_tokens:
            return ids[:n_tokens]
    raise RuntimeError(f"only {len(ids)} tokens of text available")


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _blocked_qk_floor(q, k, block_size: int) -> None:
    import torch

    hq, length, dim = q.shape
    hkv = k.shape[0]
    offset = length - 3 * (length // 4)
    rows = q.reshape(hkv, hq // hkv, length, dim)[:, :, offset:]
    buffer = torch.empty(hq * block_size * block_size)
    for r0 in range(offset, length, block_size):
        b = min(block_size, length - r0)
        q_block = rows[:, :, r0 - offset : r0 - offset + b].reshape(hkv, -1, dim)
        for c0 in range(0, r0 + b, block_size):
            kb = min(block_size, r0 + b - c0)
            out = buffer[: hq * b * kb].view(hkv, -1, kb)
            torch.bmm(q_block, k[:, c0 : c0 + kb].transpose(1, 2), out=out)


def measure(kind: str, length: int, repeats: int) -> dict:
    """One measurement in this process (called in a fresh subprocess by ``main``)."""
    import torch

    from longattn_assets.model.layer0 import load_layer0
    from longattn_assets.model.tokenizer import load_tokenizer
    from longattn_assets.scoring.scorer import Layer0Scorer
    from longattn_assets.scoring.statistics import long_range_statistics, materialized_statistics

    tokenizer = load_tokenizer("smollm2-135m")
    scorer = Layer0Scorer(
        load_layer0("smollm2-135m"), device="cpu", bos_token_id=tokenizer.bos_token_id
    )
    window = _real_window(tokenizer, length - 1)
    q, k = scorer.projector.project([window])[0]
    result: dict = {"kind": kind, "L": length}

    def reference():
        qr, kr = scorer.projector.project([window])[0]
        return materialized_statistics(qr, kr)

    call = (lambda: scorer.score([window])) if kind == "stream" else reference
    with _RssSampler() as rss:
        result["seconds"] = _best(call, repeats)
    result["peak_rss"] = _peak_rss()
    result["rss_increase"] = rss.highest - rss.start
    if kind == "stream":
        result["statistics_seconds"] = _best(lambda: long_range_statistics(q, k), repeats)
        result["floor_seconds"] = _best(lambda: _blocked_qk_floor(q, k, scorer.block_size), repeats)
        result["threads"] = torch.get_num_threads()
    return result


def _run_child(kind: str, length: int, repeats: int) -> dict:
    command = [sys.executable, __file__, "--child", kind, str(length), str(repeats)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _gb(n: int) -> str:
    return f"{n / 2**30:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--long", type=int, default=32768, help="length timed for streaming only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, length, repeats = args.child
        print(json.dumps(measure(kind, int(length), int(repeats))))
        return

    rows = []
    for length in args.lengths:
        stream = _run_child("stream", length, args.repeats)
        reference = _run_child("reference", length, max(1, args.repeats - 1))
        rows.append((length, stream, reference))
    long_stream = _run_child("stream", args.long, min(2, args.repeats)) if args.long else None

    print(f"CPU threads: {rows[0][1]['threads'] if rows else long_stream['threads']}")
    print(
        "| L | stream s | reference s | speed-up | statistics s | bare QK^T floor s "
        "| statistics / floor "
        "| stream process peak RSS GB (+during call) | reference process peak RSS GB (+during call) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for length, s, r in rows:
        print(
            f"| {length} | {s['seconds']:.3f} | {r['seconds']:.3f} | {r['seconds'] / s['seconds']:.1f}x "
            f"| {s['statistics_seconds']:.3f} | {s['floor_seconds']:.3f} "
            f"| {s['statistics_seconds'] / s['floor_seconds']:.2f} "
            f"| {_gb(s['peak_rss'])} (+{_gb(s['rss_increase'])}) "
            f"| {_gb(r['peak_rss'])} (+{_gb(r['rss_increase'])}) |"
        )
    if long_stream:
        s = long_stream
        print(
            f"| {s['L']} | {s['seconds']:.3f} | not run | - | {s['statistics_seconds']:.3f} "
            f"| {s['floor_seconds']:.3f} | {s['statistics_seconds'] / s['floor_seconds']:.2f} "
            f"| {_gb(s['peak_rss'])} (+{_gb(s['rss_increase'])}) | - |"
        )


if __name__ == "__main__":
    main()
