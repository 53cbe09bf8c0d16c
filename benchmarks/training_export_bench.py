"""Export throughput (tokens/s) and peak memory of the training export at 10 M kept tokens.

    python benchmarks/training_export_bench.py                      # 10 M kept tokens, windows of 2048
    python benchmarks/training_export_bench.py --kept-tokens 2000000 --budgets 64MB   # quicker

One synthetic category per size in --kept-tokens (under --root, reused when present):
windowed_chunks shards of random token ids below SmolLM2's vocabulary (49,152) with ~4 bytes
of ASCII text per token, scores with provenance, selected with the project's own selection
(keep half), so half the windows are kept. Then, each in a fresh process:

- floor: read every windows file's token ids once with pyarrow (the least an export reads:
  it reads every window, kept or not), at the largest size;
- category: ``export_category`` (rank order), every format (MDS, Megatron, HF): each size
  under the first budget, then the largest size under the other budgets;
- mixture: ``export_mixture`` of the largest category to its whole kept size (seeded shuffle).

Memory: peak RSS of the process during the export (a 10 ms sampling thread; ``ru_maxrss``
would include the imports' own peak) minus its RSS just before it (Python, pyarrow, torch,
streaming imported): what the export itself held, against its ``memory_budget``. Tokens/s: tokens written over the export's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

CATEGORY = "bench"
VOCAB = 49152


class PeakRss:
    def __init__(self, interval: float = 0.01):
        self.process, self.interval = psutil.Process(), interval
        self.base = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def generate(root: Path, kept_tokens: int, window: int, shards: int) -> Path:
    """Windows, scores and a keep-half selection of one category; returns the selection folder."""
    from longattn_assets.consistency import (
        SCORED_CHUNKS,
        WINDOWED_CHUNKS,
        derived_provenance,
        paired_files,
    )
    from longattn_assets.provenance import Provenance
    from longattn_assets.scoring.windows_file import SCORED_SCHEMA
    from longattn_assets.selection.exports import export_category
    from longattn_assets.storage import DataLayout, write_parquet
    from longattn_assets.windows.chunking import WINDOWED_CHUNKS_SCHEMA

    layout = DataLayout(root)
    selection = root / "longabc_dataset" / f"category={CATEGORY}"
    if (selection / "selection.json").is_file():
        return selection
    windows_total = 2 * -(-kept_tokens // window)
    per_shard = -(-windows_total // shards)
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     \n", dtype=np.uint8)
    for s in range(shards):
        shard = f"{s:05d}"
        n = min(per_shard, windows_total - s * per_shard)
        ids = [f"{CATEGORY}-{s:04d}{i:08d}-w{window}-000000000" for i in range(n)]
        tokens = rng.integers(0, VOCAB, size=n * window, dtype=np.int32)
        offsets = np.arange(0, (n + 1) * window, window, dtype=np.int32)
        text = letters[rng.integers(0, len(letters), size=n * window * 4)].tobytes().decode()
        recipe = {"code": "1", "window_size": window, "sample_fraction": 1.0, "tokenizer": "tok-bench"}
        made = Provenance(WINDOWED_CHUNKS, CATEGORY, shard, recipe, {"input_files": "synthetic"})
        windows = pa.table(
            [
                pa.array(ids), pa.array([f"doc-{s}-{i}" for i in range(n)]), pa.array([CATEGORY] * n),
                pa.array([shard] * n), pa.array(np.zeros(n, np.int32)), pa.array(np.zeros(n, np.int64)),
                pa.array(np.full(n, window, np.int32)),
                pa.ListArray.from_arrays(pa.array(offsets), pa.array(tokens)),
                pa.array([text[i * window * 4 : (i + 1) * window * 4] for i in range(n)]),
                pa.array(["tok-bench"] * n),
            ],
            schema=WINDOWED_CHUNKS_SCHEMA,
        )  # fmt: skip
        write_parquet(made.stamped(windows), layout.shard_path(WINDOWED_CHUNKS, CATEGORY, shard))
        scores = pa.table(
            [
                pa.array(ids), pa.array(np.full(n, window, np.int32)), pa.array(rng.random(n)),
                pa.array(rng.random(n) * 1e-4), pa.array([[0.1]] * n, pa.list_(pa.float32())),
                pa.array([[0.1]] * n, pa.list_(pa.float32())), pa.array(["synthetic"] * n),
            ],
            schema=SCORED_SCHEMA,
        )  # fmt: skip
        scored = derived_provenance(SCORED_CHUNKS, {"code": "1", "add_bos": True, "bos_token_id": 1}, made)
        write_parquet(scored.stamped(scores), layout.shard_path(SCORED_CHUNKS, CATEGORY, shard))
    files = paired_files(layout.shard_paths(WINDOWED_CHUNKS, CATEGORY), layout.shard_paths(SCORED_CHUNKS, CATEGORY))
    export_category(files.windows, files.scores, selection, category=CATEGORY, inputs=files.as_record(root))
    return selection


def run(kind: str, selection: Path, out: Path, budget: str) -> dict:
    """One measurement, in this (fresh) process."""
    from longattn_assets.training.export import ExportSettings, export_category, export_mixture
    from longattn_assets.training.inputs import read_selection
    from longattn_assets.training.mds import streaming_package
    from longattn_assets.training.plan import MixtureSettings

    streaming_package()  # imports done before the base RSS is taken
    chosen = read_selection(selection)
    settings = ExportSettings.from_options(memory_budget=budget)
    with PeakRss() as rss:
        started = time.perf_counter()
        if kind == "floor":
            tokens = sum(
                len(pq.read_table(w.path, columns=["token_ids"]).column(0).combine_chunks().flatten())
                for w in chosen.windows_files
            )
        elif kind == "category":
            tokens = export_category(chosen, out, settings, vocab_size=VOCAB).tokens
        else:
            mixture = MixtureSettings.from_options(token_budgets={CATEGORY: chosen.tokens_kept + chosen.kept})
            tokens = export_mixture([chosen], out, settings, mixture, vocab_size=VOCAB).tokens
        seconds = time.perf_counter() - started
    return {"kind": kind, "budget": budget, "tokens": tokens, "seconds": seconds,
            "base_mib": rss.base / 2**20, "peak_mib": rss.peak / 2**20}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kept-tokens", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="sizes to export; the largest is also mixed and read by the floor")  # fmt: skip
    parser.add_argument("--window-size", type=int, default=2048)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--budgets", nargs="+", default=["64MB", "512MB"], help="memory budgets of the category export")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "training-export-bench")
    parser.add_argument("--run", nargs=4, metavar=("KIND", "KEPT", "OUT", "BUDGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    def folder(kept: int) -> Path:
        return args.root / f"kept={kept}-w{args.window_size}"

    if args.run:
        kind, kept, out, budget = args.run
        selection = folder(int(kept)) / "longabc_dataset" / f"category={CATEGORY}"
        print(json.dumps(run(kind, selection, Path(out), budget)))
        return

    for kept in args.kept_tokens:
        started = time.perf_counter()
        generate(folder(kept), kept, args.window_size, args.shards)
        print(f"data ready in {time.perf_counter() - started:.1f} s under {folder(kept)}")
    largest = max(args.kept_tokens)
    plan = [("floor", largest, "-")]
    plan += [("category", kept, args.budgets[0]) for kept in sorted(args.kept_tokens)]
    plan += [("category", largest, b) for b in args.budgets[1:]] + [("mixture", largest, args.budgets[-1])]
    rows = []
    for kind, kept, budget in plan:
        out = folder(kept) / "out" / f"{kind}-{budget}"
        shutil.rmtree(out, ignore_errors=True)  # else a current export is found and nothing is written
        done = subprocess.run(
            [sys.executable, __file__, "--window-size", str(args.window_size), "--root", str(args.root),
             "--run", kind, str(kept), str(out), budget if budget != "-" else "512MB"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]) | {"budget": budget})
        rows[-1]["load"] = os.getloadavg()[0]
    print(f"\nwindows of {args.window_size}, {args.shards} shards, {os.cpu_count()} CPUs; "
          "the floor reads the token ids of every window (kept or not) of the largest size")
    print("| run | memory budget | tokens | wall s | tokens/s | base MiB | peak MiB | peak - base MiB | load avg |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kind']} | {r['budget']} | {r['tokens']:,} | {r['seconds']:.2f} | {r['tokens'] / r['seconds']:,.0f} | "
              f"{r['base_mib']:.0f} | {r['peak_mib']:.0f} | {r['peak_mib'] - r['base_mib']:.0f} | {r['load']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
