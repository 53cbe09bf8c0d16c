"""The diagnostics of one category: does the score rank natural windows above controls?

Input is plain data: the scores of a sample of natural windows and of the control windows
(each with its document and per-head vectors), the selection settings, and the category's
selection summary (normalization statistics over every window, and the cut). Output is a
JSON-able record that the asset, the report and the dataset card all read.

Scores compared, natural vs each control kind:
- ``lds``: N(ds) - alpha * N(du) with the category's own normalization statistics, i.e.
  exactly the score the selection ranks by (with its heads setting);
- ``ds`` and ``-du`` alone (higher ``-du`` = more uniform long-range attention);
- the same per head, LDS per head normalized with that head's statistics over the sample.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ..selection.normalize import ColumnStats
from ..selection.rules import SelectionSettings
from ..selection.select import SelectionSummary
from .controls import CONCATENATED, CONTROL_KINDS
from .separation import Separation, auc, document_draws, separations, spearman

SCORES = ("lds", "ds", "-du")
ALPHA_SWEEP = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
REPLICATES = 1000


def head_mean(heads: np.ndarray, chosen: Sequence[int] | None, mean: np.ndarray) -> np.ndarray:
    """The stored mean, or the mean of the chosen heads summed in order (as selection does)."""
    if not chosen:
        return mean
    total = np.zeros(len(heads))
    for h in chosen:
        total = total + heads[:, h]
    return total / len(chosen)


def normalized(values: np.ndarray, method: str, stats: ColumnStats) -> np.ndarray:
    """N(v) as selection/normalize.py computes it in SQL."""
    if method == "zscore":
        if stats.std is None or stats.std == 0 or not math.isfinite(stats.std):
            return np.zeros(len(values))
        return (values - stats.mean) / stats.std
    if stats.min is None or stats.max == stats.min:
        return np.full(len(values), 0.5)
    return (values - stats.min) / (stats.max - stats.min)


def column_stats(values: np.ndarray) -> ColumnStats:
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return ColumnStats(float(np.mean(values)), std, float(np.min(values)), float(np.max(values)))


def _matrix(table: pa.Table, column: str) -> np.ndarray:
    values = table.column(column).combine_chunks()
    width = len(values[0]) if len(values) else 0
    return (
        values.flatten()
        .to_numpy(zero_copy_only=False)
        .astype(np.float64)
        .reshape(len(values), width)
    )


class _Scores:
    """Every score of a set of windows, rows ordered as SCORES then SCORES per head."""

    def __init__(
        self,
        table: pa.Table,
        settings: SelectionSettings,
        category: ColumnStats,
        du_stats: ColumnStats,
    ):
        self.doc_id = np.asarray(table.column("doc_id").to_pylist(), dtype=object)
        self.ds_heads, self.du_heads = _matrix(table, "ds_heads"), _matrix(table, "du_heads")
        self.ds = head_mean(
            self.ds_heads, settings.heads, table.column("ds").to_numpy().astype(float)
        )
        self.du = head_mean(
            self.du_heads, settings.heads, table.column("du").to_numpy().astype(float)
        )
        self.ds_norm = normalized(self.ds, settings.normalize, category)
        self.du_norm = normalized(self.du, settings.normalize, du_stats)

    def lds(self, alpha: float) -> np.ndarray:
        return self.ds_norm - alpha * self.du_norm

    def rows(
        self, alpha: float, head_stats: list[tuple[ColumnStats, ColumnStats]], method: str
    ) -> np.ndarray:
        per_head = [
            normalized(self.ds_heads[:, h], method, ds_s)
            - alpha * normalized(self.du_heads[:, h], method, du_s)
            for h, (ds_s, du_s) in enumerate(head_stats)
        ]
        return np.vstack(
            [self.lds(alpha), self.ds, -self.du, *per_head, *self.ds_heads.T, *(-self.du_heads.T)]
        )


def _seed(key: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(key.encode(), digest_size=8, person=b"longattn-boot").digest(), "big"
    )


def diagnose(
    natural: pa.Table,
    controls: pa.Table,
    settings: SelectionSettings,
    selection: SelectionSummary,
    *,
    seed_key: str,
    replicates: int = REPLICATES,
) -> dict[str, object]:
    """The diagnostics record (see the module docstring).

    ``natural``: data_id, doc_id, ds, du, ds_heads, du_heads of a sample of the category's
    windows; ``controls``: the same columns plus ``kind``; ``selection``: the summary of the
    category's selection under ``settings`` (statistics over all windows, and the cut).
    """
    stats = selection.stats
    nat = _Scores(natural, settings, stats.ds, stats.du)
    n_heads = nat.ds_heads.shape[1]
    head_stats = [
        (column_stats(nat.ds_heads[:, h]), column_stats(nat.du_heads[:, h])) for h in range(n_heads)
    ]
    documents = sorted(set(nat.doc_id) | set(controls.column("doc_id").to_pylist()))
    index = {doc: i for i, doc in enumerate(documents)}
    draws = document_draws(len(documents), replicates, _seed(seed_key))
    nat_rows = nat.rows(settings.alpha, head_stats, settings.normalize)
    nat_groups = np.array([index[d] for d in nat.doc_id], dtype=np.int64)
    bar = settings.value if settings.rule == "threshold" else selection.cut_lds
    kinds = controls.column("kind").to_numpy(zero_copy_only=False)
    separation: dict[str, dict[str, dict[str, float]]] = {}
    heads: dict[str, dict[str, list[dict[str, float]]]] = {}
    kept_share: dict[str, float | None] = {
        "natural": selection.kept / selection.n if selection.n else None
    }
    alpha_sweep: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    lds_values = {"natural": nat.lds(settings.alpha)}
    for kind in CONTROL_KINDS:
        part = controls.filter(pa.array(kinds == kind))
        counts[kind] = part.num_rows
        if part.num_rows == 0 or natural.num_rows == 0:
            continue
        ctl = _Scores(part, settings, stats.ds, stats.du)
        groups = np.array([index[d] for d in ctl.doc_id], dtype=np.int64)
        found = separations(
            nat_rows,
            nat_groups,
            ctl.rows(settings.alpha, head_stats, settings.normalize),
            groups,
            draws,
        )
        separation[kind] = {name: found[i].as_dict() for i, name in enumerate(SCORES)}
        heads[kind] = {
            name: [s.as_dict() for s in found[3 + i * n_heads : 3 + (i + 1) * n_heads]]
            for i, name in enumerate(SCORES)
        }
        lds = lds_values[kind] = ctl.lds(settings.alpha)
        kept_share[kind] = 0.0 if bar is None else float(np.mean(lds >= bar))
        alpha_sweep[kind] = {repr(a): auc(nat.lds(a), ctl.lds(a)) for a in ALPHA_SWEEP}
    record: dict[str, object] = {
        "settings": settings.as_dict(),
        "windows": selection.n,
        "natural_sample": natural.num_rows,
        "documents": len(set(nat.doc_id)),
        "controls": counts,
        "heads_scored": n_heads,
        "replicates": replicates,
        "interval_level": 0.95,
        "separation": separation,
        "heads": heads,
        "ds_du_spearman": {
            "natural": spearman(nat.ds, nat.du),
            "per_head": [spearman(nat.ds_heads[:, h], nat.du_heads[:, h]) for h in range(n_heads)],
        },
        "keep_bar_lds": bar,
        "kept_share": kept_share,
        "alpha_sweep": alpha_sweep,
        "best_heads": best_heads(heads.get(CONCATENATED, {}).get("lds", [])),
        "lds_histogram": histogram(lds_values),
    }
    passed, message = verdict(record)
    record["lds_separates_concatenated"] = passed
    record["advice"] = message
    return record


def histogram(groups: dict[str, np.ndarray], bins: int = 30) -> dict[str, list[float]]:
    """Shared bin edges and each group's density, for plotting the LDS distributions."""
    values = np.concatenate([v for v in groups.values() if len(v)] or [np.zeros(0)])
    values = values[np.isfinite(values)]
    if not len(values):
        return {"edges": []}
    edges = np.histogram_bin_edges(values, bins=bins)
    result = {"edges": edges.tolist()}
    for name, group in groups.items():
        counts, _ = np.histogram(group, bins=edges)
        result[name] = (counts / max(1, len(group))).tolist()
    return result


def best_heads(per_head: list[dict[str, float]], share: float = 0.25) -> list[int]:
    """Heads whose own LDS separates natural from concatenated windows (interval above 0.5),
    best first, at most a quarter of the heads (at least one)."""
    good = [h for h, s in enumerate(per_head) if s["low"] > 0.5]
    good.sort(key=lambda h: (-per_head[h]["auc"], h))
    return good[: max(1, int(len(per_head) * share))]


def verdict(record: dict) -> tuple[bool, str]:
    """Does LDS separate natural windows from concatenations? With what to try if not."""
    found = record["separation"].get(CONCATENATED)
    if found is None:
        return False, (
            "LDS could not be tested against concatenated controls: they need windows of at "
            "least two documents in the category. Add documents, or shorter windows."
        )
    lds, du = Separation(**found["lds"]), Separation(**found["-du"])
    if lds.low > 0.5:
        return True, (
            f"LDS ranks natural windows above concatenations of unrelated documents: AUC "
            f"{lds.auc:.2f} (95% interval {lds.low:.2f} to {lds.high:.2f})."
        )
    tries = [
        "a larger model (LONGATTN_MODEL: the paper used Llama-3.1-70B at 32K tokens)",
        "longer windows (LONGATTN_WINDOW_SIZE, within the model's context length)",
        f"the normalization or alpha (-DU alone reaches AUC {du.auc:.2f}; alpha_sweep in the "
        "metadata gives LDS's AUC for other alphas)",
    ]
    if record["best_heads"]:
        tries.append(
            f"a subset of heads (selection setting heads={record['best_heads']} separate best)"
        )
    else:
        tries.append("a subset of heads (no single head separates either on this sample)")
    return False, (
        f"LDS does not separate natural windows from concatenations of unrelated documents: "
        f"AUC {lds.auc:.2f}, 95% interval {lds.low:.2f} to {lds.high:.2f} (0.5 = no better than "
        f"chance). The selection is not keeping long-range-dependent text on this corpus with "
        f"this model. Try: " + "; ".join(tries) + "."
    )


def markdown_table(record: dict) -> str:
    """AUC (95% interval) of each score against each control, plus the share each would keep."""
    lines = [
        "| natural vs | LDS AUC | DS AUC | -DU AUC | share kept |",
        "|---|---|---|---|---|",
    ]
    share = record["kept_share"]
    for kind in CONTROL_KINDS:
        found = record["separation"].get(kind)
        if found is None:
            lines.append(f"| {kind} | n/a | n/a | n/a | n/a |")
            continue
        cells = [
            f"{s['auc']:.2f} [{s['low']:.2f}, {s['high']:.2f}]" for s in (found[n] for n in SCORES)
        ]
        lines.append(f"| {kind} | {' | '.join(cells)} | {share[kind]:.2f} |")
    natural = share.get("natural")
    lines.append(
        f"| (natural windows kept) | | | | {'' if natural is None else f'{natural:.2f}'} |"
    )
    return "\n".join(lines)


def card_section(record: dict | None, settings: SelectionSettings) -> str:
    """The dataset card's "Scorer diagnostics" section, next to the selection settings."""
    lines = ["## Scorer diagnostics", ""]
    if record is None:
        return "\n".join(
            [
                *lines,
                "Not computed for these scores: materialize `scorer_diagnostics` "
                "for this category to see whether the score separates natural text from controls.",
                "",
            ]
        )
    lines += [record["advice"], "", markdown_table(record), ""]
    lines.append(
        f"AUC = probability that a natural window scores higher than a control (0.5: no separation), "
        f"95% bootstrap interval over documents; {record['natural_sample']:,} natural windows of "
        f"{record['documents']:,} documents, controls made from the same corpus and scored by the "
        f"same model. Spearman(ds, du) over natural windows: {record['ds_du_spearman']['natural']:+.2f}. "
        f"Heads that separate best: {record['best_heads'] or 'none'}."
    )
    computed = SelectionSettings(**record["settings"])
    if computed != settings:
        lines += [
            "",
            f"Computed for the settings {computed.as_dict()}, not this dataset's {settings.as_dict()}.",
        ]
    return "\n".join([*lines, ""])
