"""What scoring a layer above 0 (LONGATTN_LAYER) costs on the CPU, against layer 0, in one run.

    python benchmarks/layer_cost_bench.py [--lengths 512 2048] [--layers 0 1 3] [--repeats 3]

On the embedded SmolLM2-135M and real text (stdlib sources tokenized by its tokenizer), one
scorer per layer is built in this process; for each window length the layers are timed in
turn, ``--repeats`` rounds interleaved (layer 0, 1, 3, 0, 1, 3, ...) so that a change of
machine load hits every layer alike, and the best time of each is kept. Scoring layer N runs
the N layers below it whole (lower_layers.py) before layer N's projections and statistics.
The load average is printed beside each row: figures taken on a loaded machine say little.
"""

from __future__ import annotations

import argparse
import inspect
import os
import time


def _text_ids(length: int) -> list[int]:
    import typing

    from longattn_assets.model.tokenizer import load_tokenizer

    text = "\n".join(inspect.getsource(module) for module in (inspect, typing, argparse))
    ids = load_tokenizer().encode_batch([text])[0]
    assert len(ids) >= length, f"the text has {len(ids)} tokens, fewer than {length}"
    return ids[:length]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 1, 3])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from longattn_assets.scoring.factory import build_scorer

    scorers = {layer: build_scorer("smollm2-135m", device="cpu", layer=layer) for layer in args.layers}
    print("| L | " + " | ".join(f"layer {n} s" for n in args.layers) + " | "
          + " | ".join(f"layer {n} / layer {args.layers[0]}" for n in args.layers[1:]) + " | load avg |")  # fmt: skip
    print("|---:|" + "---:|" * (2 * len(args.layers) - 1) + "---:|")
    for length in args.lengths:
        window = _text_ids(length - 1)
        best = dict.fromkeys(args.layers, float("inf"))
        for _ in range(args.repeats):
            for layer, scorer in scorers.items():
                start = time.perf_counter()
                scorer.score([window])
                best[layer] = min(best[layer], time.perf_counter() - start)
        base = best[args.layers[0]]
        cells = [f"{best[n]:.3f}" for n in args.layers] + [f"{best[n] / base:.2f}x" for n in args.layers[1:]]
        print(f"| {length} | " + " | ".join(cells) + f" | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
