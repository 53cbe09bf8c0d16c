"""Score windows of a saved model in a process of its own and print their bits (a test helper).

    python -m tests.model.family_child FOLDER LAYER

The windows are ``WINDOWS`` of test_family_reproducible.py; the output is one JSON line.
"""

from __future__ import annotations

import json
import sys

WINDOWS = ((30, 0), (95, 100), (47, 300), (150, 500), (5, 900))


def windows() -> list[list[int]]:
    from tests.model.tiny_models import text_window

    return [text_window(n, start) for n, start in WINDOWS]


def main() -> None:
    from longattn_assets.model.layer0 import load_layer0
    from longattn_assets.scoring.scorer import Layer0Scorer
    from tests.scoring.score_child import score_bits

    folder, layer = sys.argv[1], int(sys.argv[2])
    scorer = Layer0Scorer(load_layer0(folder, layer=layer), device="cpu", bos_token_id=1)
    print(json.dumps([score_bits(s) for s in scorer.score(windows())]))


if __name__ == "__main__":
    main()
