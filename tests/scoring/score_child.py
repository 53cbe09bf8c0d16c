"""Score the evidence windows in a process of its own and print their bits (a test helper).

    python -m tests.scoring.score_child [--warm]

``--warm`` first scores other windows of other lengths (one longer than the model's
context, which regrows the RoPE tables), as a long-lived process would have. The output
is one JSON line: the scores' bits as hex, and the digest of a plain float32 matmul (which
shows whether the BLAS library took another kernel path in this process).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

EVIDENCE = Path(__file__).parent / "data" / "evidence_windows.parquet"


def evidence_windows() -> list[list[int]]:
    import pyarrow.parquet as pq

    return pq.read_table(EVIDENCE, columns=["token_ids"]).column("token_ids").to_pylist()


def score_bits(score) -> str:
    """Every bit of a WindowScore: float64 head means, then float32 per-head vectors."""
    import numpy as np

    means = np.array([score.ds, score.du], dtype=np.float64).tobytes()
    return (means + score.ds_heads.tobytes() + score.du_heads.tobytes()).hex()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm", action="store_true")
    args = parser.parse_args()

    import torch

    from longattn_assets.scoring.factory import build_scorer

    scorer = build_scorer("smollm2-135m", device="cpu")
    windows = evidence_windows()
    if args.warm:
        others = [windows[2][:700], windows[1][:63], windows[0] * 5, windows[1][:5]]
        scorer.score([w[:8300] for w in others])
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(333, 576, generator=generator)
    b = torch.randn(768, 576, generator=generator)
    matmul = hashlib.sha256((a @ b.T).numpy().tobytes()).hexdigest()
    scores = [score_bits(s) for s in scorer.score(windows)]
    print(json.dumps({"scores": scores, "matmul": matmul}))


if __name__ == "__main__":
    main()
