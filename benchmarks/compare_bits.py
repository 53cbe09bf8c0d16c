"""Proof that a change of the CPU scorer's code kept every bit: old and new scores, side by side.

    python benchmarks/compare_bits.py [--old-rev 4e6e705] [--max-length 8192] [--workers 1 2]

The package as it was at ``--old-rev`` (``git archive``) and the checkout's package each score
the same windows in a process of their own: real text of the bundled sample (arxiv, book,
code) cut at lengths around every multiple of the 512 block and of the 512-row chunk, and
odd ones (3 to ``--max-length`` tokens, BOS added), plus the three evidence windows of
``tests/scoring``. The checkout scores them with each worker count of ``--workers`` and in
two batch sizes. Then the statistics alone run on random q, k of several shapes and block
sizes (``long_range_statistics``). Every value compared is the raw bytes of the float64
head means and the float32 per-head ds and du; the script prints one line per group and
exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OLD_REV = "4e6e705"  # main before issue 20: the first bit-reproducible scorer's last state
BASE_LENGTHS = (
    2, 3, 4, 5, 15, 16, 17, 63, 64, 100, 255, 383, 384, 385, 511, 512, 513, 700, 1000, 1023,
    1024, 1025, 1535, 1536, 1537, 2047, 2048, 2049, 2730, 3001, 4095, 4096, 4097, 5000, 6143,
    8191, 8192,
)  # fmt: skip
# (heads, kv heads, length, head_dim, block_size) of the random statistics cases.
SHAPES = (
    (6, 2, 513, 16, 8), (6, 2, 200, 16, 64), (3, 3, 300, 32, 32), (9, 3, 1100, 64, 512),
    (9, 3, 2049, 64, 128), (4, 1, 4100, 64, 512), (8, 8, 777, 64, 256), (2, 1, 257, 8, 4),
)  # fmt: skip

CHILD = r"""
import inspect, json, sys
import numpy as np
import torch
from longattn_assets.model.layer0 import load_layer0
from longattn_assets.model.tokenizer import load_tokenizer
from longattn_assets.scoring.scorer import Layer0Scorer
from longattn_assets.scoring.statistics import long_range_statistics

request = json.load(open(sys.argv[1]))
tokenizer = load_tokenizer("smollm2-135m")
weights = load_layer0("smollm2-135m")
out = {}
for label, options in request["scorers"].items():
    options = dict(options)
    if "workers" not in inspect.signature(Layer0Scorer).parameters:
        options.pop("workers", None)
    scorer = Layer0Scorer(weights, device="cpu", bos_token_id=tokenizer.bos_token_id, **options)
    scores = scorer.score(request["windows"])
    out[label] = [
        (np.array([s.ds, s.du]).tobytes() + s.ds_heads.tobytes() + s.du_heads.tobytes()).hex()
        for s in scores
    ]
bits = []
for hq, hkv, length, dim, block in request["shapes"]:
    gen = torch.Generator().manual_seed(hq * 7 + length)
    q = torch.randn(hq, length, dim, generator=gen) * 2
    k = torch.randn(hkv, length, dim, generator=gen) * 2
    ds, du = long_range_statistics(q, k, block_size=block)
    bits.append((ds.numpy().tobytes() + du.numpy().tobytes()).hex())
out["statistics"] = bits
print(json.dumps(out))
"""


def sample_windows(max_length: int) -> list[list[int]]:
    """Windows of real text at every length of BASE_LENGTHS up to ``max_length``, from each category."""
    import pyarrow.parquet as pq

    from longattn_assets.corpus.records import read_file
    from longattn_assets.model.tokenizer import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m")
    sample = REPO / "longattn_assets" / "data" / "sample"
    streams = []
    for category in ("arxiv", "book", "code"):
        ids: list[int] = []
        for path in sorted((sample / category).iterdir()):
            for record in read_file(path):
                if hasattr(record, "text"):
                    ids.extend(tokenizer.encode_batch([record.text])[0])
                if len(ids) > 4 * max_length:
                    break
        streams.append(ids)
    windows = []
    for i, length in enumerate(n for n in BASE_LENGTHS if n <= max_length):
        stream = streams[i % len(streams)]
        start = (i * 7919) % max(1, len(stream) - length)
        windows.append(stream[start : start + length])
    evidence = REPO / "tests" / "scoring" / "data" / "evidence_windows.parquet"
    windows += pq.read_table(evidence, columns=["token_ids"]).column("token_ids").to_pylist()
    return windows


def run_child(package_root: Path | None, request: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(request, handle)
    env = dict(os.environ)
    if package_root is not None:
        env["PYTHONPATH"] = str(package_root)
        # a cache of its own: the layer-0 conversion cache's format changed since (meta.json)
        env["LONGATTN_CACHE_DIR"] = str(package_root / "cache")
    cwd = package_root or REPO
    done = subprocess.run(
        [sys.executable, "-c", CHILD, handle.name], cwd=cwd, env=env, capture_output=True, text=True
    )
    os.unlink(handle.name)
    if done.returncode:
        raise SystemExit(f"child failed ({package_root or 'checkout'}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-rev", default=DEFAULT_OLD_REV)
    parser.add_argument("--max-length", type=int, default=8192)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    windows = sample_windows(args.max_length)
    shapes = [list(s) for s in SHAPES]
    print(f"{len(windows)} windows of {min(map(len, windows))}-{max(map(len, windows))} tokens "
          f"(+BOS), {len(shapes)} statistics shapes; old code: {args.old_rev}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "old.tar"
        subprocess.run(
            ["git", "archive", "-o", str(archive), args.old_rev, "longattn_assets"], cwd=REPO, check=True
        )
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
        old = run_child(Path(folder), {"windows": windows, "shapes": shapes,
                                       "scorers": {"old": {"batch_tokens": 65536}}})  # fmt: skip
    scorers = {
        f"workers={w}, batch={b}": {"workers": w, "batch_tokens": b}
        for w in args.workers for b in (4096, 65536)
    }  # fmt: skip
    new = run_child(None, {"windows": windows, "shapes": shapes, "scorers": scorers})
    failed = False
    for label in scorers:
        differ = [i for i, (a, b) in enumerate(zip(old["old"], new[label], strict=True)) if a != b]
        failed |= bool(differ)
        print(f"{label}: {len(windows) - len(differ)}/{len(windows)} windows bit-identical"
              + (f"; differ at lengths {[len(windows[i]) for i in differ]}" if differ else ""))  # fmt: skip
    differ = [shapes[i] for i, (a, b) in enumerate(zip(old["statistics"], new["statistics"], strict=True)) if a != b]
    failed |= bool(differ)
    print(f"long_range_statistics: {len(shapes) - len(differ)}/{len(shapes)} shapes bit-identical"
          + (f"; differ at {differ}" if differ else ""))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
