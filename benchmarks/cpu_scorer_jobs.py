"""Where the exact CPU scorer's workers spend a batch: wall and CPU time per kind of job.

    python benchmarks/cpu_scorer_jobs.py [--length 2048] [--batch 8] [--workers 1 2] [--rounds 5]
                                         [--row-chunk 512]

For each worker count (a process of its own, warmed on another window), the scorer scores
``--batch`` windows of real text (BOS + L - 1 tokens) ``--rounds`` times; for the fastest
round it prints, per window, the wall and CPU time of the batch and of each kind of job
(``prepare``: projection; ``round``: a kv head's operands; ``run``: a piece of the
statistics), and the workers' capacity (wall x workers) those jobs filled. Jobs that take
longer with more workers than with one, at the same count, lose to contention (the GIL,
memory); capacity the jobs do not fill is a worker waiting for work. ``--row-chunk`` sets
``statistics.ROW_CHUNK`` (rows per piece, a multiple of 16: the bits do not change).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(length: int, batch: int, workers: int, rounds: int, row_chunk: int) -> dict:
    sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
    from cpu_scorer_bench import real_windows

    import longattn_assets  # noqa: F401 - pins ATen to AVX2 before torch starts
    from longattn_assets.model.layer0 import load_layer0
    from longattn_assets.model.tokenizer import load_tokenizer
    from longattn_assets.scoring import parallel, statistics
    from longattn_assets.scoring.scorer import Layer0Scorer

    statistics.ROW_CHUNK = row_chunk
    tokenizer = load_tokenizer("smollm2-135m")
    scorer = Layer0Scorer(
        load_layer0("smollm2-135m"), device="cpu", bos_token_id=tokenizer.bos_token_id, workers=workers
    )
    *timed, warm = real_windows(tokenizer, length - 1, count=batch + 1)
    scorer.score([warm])
    jobs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    run = parallel._Batch._run

    def timed_run(self, window, stage, index):
        start, cpu = time.perf_counter(), time.thread_time()
        run(self, window, stage, index)
        jobs[stage].append((time.perf_counter() - start, time.thread_time() - cpu))

    parallel._Batch._run = timed_run
    best = None
    for _ in range(rounds):
        jobs.clear()
        start, cpu = time.perf_counter(), time.process_time()
        scorer.score(timed)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        if best is None or wall < best["wall"]:
            stages = {k: [len(v), sum(a for a, _ in v), sum(b for _, b in v)] for k, v in jobs.items()}
            best = {"wall": wall, "cpu": cpu, "stages": stages}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--row-chunk", type=int, default=512)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row_chunk < 16 or args.row_chunk % 16:
        parser.error(f"--row-chunk must be a positive multiple of 16, got {args.row_chunk}")
    if args.child:
        print(json.dumps(child(args.length, args.batch, args.workers[0], args.rounds, args.row_chunk)))
        return
    n = args.batch
    print(f"L={args.length}, {n} windows per batch, rows per piece {args.row_chunk}; ms per window, best of {args.rounds}")
    print("| workers | batch wall | batch CPU | job | jobs | wall | CPU | mean wall per job |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for workers in args.workers:
        command = [sys.executable, __file__, "--child", "--length", str(args.length), "--batch", str(n),
                   "--workers", str(workers), "--rounds", str(args.rounds), "--row-chunk", str(args.row_chunk)]  # fmt: skip
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        filled = 0.0
        for stage, (count, wall, cpu) in result["stages"].items():
            filled += wall
            print(f"| {workers} | {result['wall'] / n * 1e3:.1f} | {result['cpu'] / n * 1e3:.1f} | {stage} | {count} | "
                  f"{wall / n * 1e3:.1f} | {cpu / n * 1e3:.1f} | {wall / count * 1e3:.2f} |")  # fmt: skip
        capacity = result["wall"] * workers
        print(f"| {workers} | | | (jobs fill {filled / capacity:.0%} of the workers' capacity) | | | | |")


if __name__ == "__main__":
    main()
