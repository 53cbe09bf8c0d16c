"""The scorer diagnostics of the embedded model on the bundled sample corpus, as one table.

    python benchmarks/diagnostics_table.py                       # windows of 2048 and 4096
    python benchmarks/diagnostics_table.py --window-sizes 2048 --controls-per-kind 32

Runs `longattn demo` (the whole pipeline through Dagster) once per window size into
``--data-root``/w<size> with ``--controls-per-kind`` controls of each kind per category,
then prints, per category and control kind, the AUC of LDS, DS and -DU (natural vs control)
with its 95% bootstrap interval over documents, the share of controls the default
selection would keep, and the ds-du Spearman correlation over natural windows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from longattn_assets.demo import DEMO_CONTROLS_PER_KIND, run_demo
from longattn_assets.diagnostics.controls import CONTROL_KINDS
from longattn_assets.diagnostics.files import DIAGNOSTICS_FILE, SCORER_DIAGNOSTICS
from longattn_assets.diagnostics.summary import SCORES
from longattn_assets.partitions import category_partitions
from longattn_assets.storage import DataLayout


def _cell(found: dict | None, score: str) -> str:
    if found is None:
        return "n/a"
    s = found[score]
    return f"{s['auc']:.2f} [{s['low']:.2f}, {s['high']:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--window-sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--controls-per-kind", type=int, default=DEMO_CONTROLS_PER_KIND)
    parser.add_argument("--data-root", type=Path, default=Path("diagnostics-table"))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    records: dict[int, dict[str, dict]] = {}
    for size in args.window_sizes:
        root = args.data_root / f"w{size}"
        started = time.perf_counter()
        run_demo(
            root,
            window_size=size,
            device=args.device,
            controls_per_kind=args.controls_per_kind,
            say=lambda _: None,
        )
        layout = DataLayout(root)
        records[size] = {
            category: json.loads(
                layout.category_file(SCORER_DIAGNOSTICS, category, DIAGNOSTICS_FILE).read_text()
            )
            for category in category_partitions.get_partition_keys()
        }
        print(f"window {size}: pipeline {time.perf_counter() - started:.0f} s")
    head = ["category", "natural vs"]
    for size in args.window_sizes:
        head += [f"{score.upper()} AUC {size}" for score in SCORES] + [f"kept {size}"]
    print("\n| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for category in category_partitions.get_partition_keys():
        for kind in CONTROL_KINDS:
            cells = [category, kind]
            for size in args.window_sizes:
                record = records[size][category]
                found = record["separation"].get(kind)
                share = record["kept_share"].get(kind)
                cells += [_cell(found, s) for s in SCORES] + [
                    "n/a" if share is None else f"{share:.2f}"
                ]
            print("| " + " | ".join(cells) + " |")
    print()
    for size in args.window_sizes:
        for category, record in records[size].items():
            print(
                f"window {size}, {category}: {record['natural_sample']} natural windows of "
                f"{record['documents']} documents; Spearman(ds, du) {record['ds_du_spearman']['natural']:+.2f}; "
                f"best heads {record['best_heads'] or 'none'}; check "
                f"{'passes' if record['lds_separates_concatenated'] else 'warns'}"
            )


if __name__ == "__main__":
    main()
