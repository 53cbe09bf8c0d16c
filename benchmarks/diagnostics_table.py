"""The scorer diagnostics of the embedded model on the bundled sample corpus, as the README's tables.

    python benchmarks/diagnostics_table.py                          # windows of 2048 and 4096
    python benchmarks/diagnostics_table.py --readme README.md       # and rewrite the README's tables
    python benchmarks/diagnostics_table.py --window-sizes 2048 4096 --controls-per-kind 64 16

Runs `longattn demo` (the whole pipeline through Dagster) once per window size into
``--data-root``/w<size>, with ``--controls-per-kind`` controls of each kind per part
(default: the asset's), reusing whatever is current there. Then prints, per window size,
category and control kind, the held-out AUC of LDS with the paper's settings and with the
calibrated ones, of DS and of -DU (natural vs control, 95% bootstrap interval over
documents), how far the LDS AUCs move between the two independent draws of controls, and
the share of controls each selection would keep; then per category what was split, chosen
and concluded, and what the diagnostics step cost. With ``--readme`` the tables replace
the block between the README's ``diagnostics-table`` markers, so the README shows what the
current code computes.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from longattn_assets.demo import run_demo
from longattn_assets.diagnostics.controls import CONCATENATED, CONTROL_KINDS, ControlSpec
from longattn_assets.diagnostics.files import DIAGNOSTICS_FILE, SCORER_DIAGNOSTICS
from longattn_assets.diagnostics.summary import CALIBRATED, describe
from longattn_assets.partitions import category_partitions
from longattn_assets.selection.rules import SelectionSettings
from longattn_assets.selection.select import select_category
from longattn_assets.storage import DataLayout

BEGIN, END = "<!-- diagnostics-table:begin -->", "<!-- diagnostics-table:end -->"
LABELS = {CONCATENATED: "concatenated", "repeated": "repeated", "shuffled": "units shuffled"}


def _cell(found: dict | None) -> str:
    return (
        "n/a" if found is None else f"{found['auc']:.2f} [{found['low']:.2f}, {found['high']:.2f}]"
    )


def _pair(first: float | None, second: float | None, calibrated: bool) -> str:
    text = "n/a" if first is None else f"{first:.2f}"
    return text + (f" / {'n/a' if second is None else f'{second:.2f}'}" if calibrated else "")


def kept_in_common(root: Path, category: str, record: dict) -> float | None:
    """The share of the windows the paper's selection keeps that the calibrated one keeps too."""
    if record["calibrated"] is None:
        return None
    files = {
        asset: sorted(
            str(p) for p in (root / asset / f"category={category}").glob("shard=*.parquet")
        )
        for asset in ("windowed_chunks", "scored_chunks")
    }
    kept = []
    for settings in (record["settings"], record["calibrated"]["settings"]):
        result = select_category(*files.values(), **SelectionSettings(**settings).options())
        table = result.table.filter(result.table.column("selected"))
        kept.append(set(table.column("data_id").to_pylist()))
    return len(kept[0] & kept[1]) / len(kept[0]) if kept[0] else None


def table(size: int, records: dict[str, dict], common: dict[str, float | None]) -> list[str]:
    per_kind = {r["recipe"]["controls_per_kind"] for r in records.values()}
    lines = [
        f"Windows of {size:,} tokens, {' / '.join(map(str, sorted(per_kind)))} controls of each kind per part:",
        "",
        "| category | natural vs | LDS, paper's settings | LDS, calibrated | DS | -DU | draw spread | kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for category, record in records.items():
        n, docs = record["natural_windows"], record["documents"]
        label = f"{category} ({n['evaluation']} windows of {docs['evaluation']} documents held out)"
        has_calibrated = record["calibrated"] is not None
        for row, kind in enumerate(CONTROL_KINDS):
            found = record["separation"].get(kind, {})
            kept, kept_calibrated = record["kept_share"], record["kept_share_calibrated"] or {}
            spread = [found.get(s, {}).get("spread") for s in ("lds", CALIBRATED)]
            cells = [
                label if row == 0 else "", LABELS[kind], _cell(found.get("lds")), _cell(found.get(CALIBRATED)),
                _cell(found.get("ds")), _cell(found.get("-du")), _pair(*spread, has_calibrated),
                _pair(kept.get(kind), kept_calibrated.get(kind), has_calibrated),
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for category, record in records.items():
        calibrated = record["calibrated"]
        if calibrated is None:
            chosen = f"no calibration ({record['split']['refused']})"
        else:
            tuning = calibrated["tuning"]
            by_draw = "; ".join(
                describe({**calibrated["settings"], **c}) for c in tuning["by_draw"]
            )
            chosen = (
                f"calibrated on {record['documents']['tuning']} documents: {describe(calibrated['settings'])} "
                f"(tuning AUC {tuning['chosen']['auc']:.2f}); the two draws alone chose "
                f"{'the same' if tuning['draws_agree'] else by_draw}; the calibrated selection keeps "
                f"{common[category]:.0%} of the windows the paper's keeps"
            )
        lines.append(
            f"- {category}: {chosen}; Spearman(ds, du) {record['ds_du_spearman']['natural']:+.2f}; "
            f"check {'passes' if record['lds_separates_concatenated'] else 'warns'}."
        )
    return lines


def _diagnostics_seconds(said: list[str]) -> dict[str, str]:
    """Each category's diagnostics step time and control count, from the demo's lines."""
    found, category = {}, None
    for line in said:
        if line.startswith("["):
            category = line.strip("[]")
        elif match := re.match(
            r"\s*scorer diagnostics \(.*\): ([\d.]+)s\s+control_windows=(\S+)", line
        ):
            found[category] = f"{match[2]} control windows in {float(match[1]):.0f} s"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--window-sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument(
        "--controls-per-kind", type=int, nargs="+", default=[ControlSpec.per_kind],
        help="one number, or one per window size (default: the asset's)",
    )  # fmt: skip
    parser.add_argument("--data-root", type=Path, default=Path("diagnostics-table"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--readme", type=Path, default=None, help="rewrite this README's tables")
    args = parser.parse_args()
    per_kind = args.controls_per_kind * (len(args.window_sizes) if len(args.controls_per_kind) == 1 else 1)
    if len(per_kind) != len(args.window_sizes):
        parser.error("give one --controls-per-kind, or one per window size")
    out: list[str] = []
    for size, controls in zip(args.window_sizes, per_kind):
        root = args.data_root / f"w{size}"
        said: list[str] = []
        started = time.perf_counter()
        run_demo(
            root,
            window_size=size,
            device=args.device,
            controls_per_kind=controls,
            say=said.append,
        )
        layout = DataLayout(root)
        records = {
            category: json.loads(
                layout.category_file(SCORER_DIAGNOSTICS, category, DIAGNOSTICS_FILE).read_text()
            )
            for category in category_partitions.get_partition_keys()
        }
        common = {category: kept_in_common(root, category, r) for category, r in records.items()}
        costs = _diagnostics_seconds(said)
        print(f"window {size}: pipeline {time.perf_counter() - started:.0f} s (what was not current); "
              f"diagnostics: {', '.join(f'{c} {v}' for c, v in costs.items()) or 'all up to date'}")  # fmt: skip
        out += [*table(size, records, common), ""]
    text = "\n".join(out).rstrip() + "\n"
    print("\n" + text)
    if args.readme:
        readme = args.readme.read_text()
        start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
        args.readme.write_text(readme[:start] + "\n" + text + readme[end:])
        print(f"rewrote the tables of {args.readme}")


if __name__ == "__main__":
    main()
