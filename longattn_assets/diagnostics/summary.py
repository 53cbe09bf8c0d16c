"""The diagnostics of one category: does the score rank natural windows above controls?

Input is plain data: the scores of a sample of natural windows (with their documents), the
scores of the control windows (with their kind, part, half, draw and documents), the
document split, the settings, and a function that summarizes the category's selection
under given settings (its normalization statistics over every window, and its cut).
Output is a JSON-able record that the asset, the report and the dataset card all read.

Two sets of selection settings are judged, both on the evaluation part only:
- the settings as given (the paper's by default: every head, alpha 0.5);
- the calibrated settings: heads and alpha chosen on the tuning part (calibration.py).
For each, LDS is exactly the score the selection would rank by (the category's own
normalization statistics); DS and -DU alone, and each head's own scores, are judged too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from ..selection.rules import DEFAULT_ALPHA, SelectionSettings
from ..selection.select import SelectionSummary
from .calibration import ALPHAS, Choice, candidates
from .controls import CONCATENATED, CONTROL_KINDS, DRAWS
from .scores import WindowScores
from .separation import LEVEL, Comparison, control_counts, document_draws, spearman
from .settings import DiagnosticsSettings
from .split import EVALUATION, TUNING, DocumentSplit

SCORES = ("lds", "ds", "-du")
CALIBRATED = "lds_calibrated"


def _seed(key: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(key.encode(), digest_size=8, person=b"longattn-boot").digest(), "big"
    )


class _Part:
    """The natural windows and controls of one part, and comparisons between them."""

    def __init__(self, natural: pa.Table, controls: pa.Table, split: DocumentSplit, part: str):
        nat_docs = np.asarray(natural.column("doc_id").to_pylist(), dtype=object)
        self.natural_rows = np.flatnonzero([split.part.get(d) == part for d in nat_docs])
        self.natural_docs = nat_docs[self.natural_rows]
        self.natural_half = np.array([split.half[d] for d in self.natural_docs], dtype=np.int64)
        ctl_part = controls.column("part").to_numpy(zero_copy_only=False)
        self.control_rows = np.flatnonzero(ctl_part == part)
        picked = controls.take(pa.array(self.control_rows, pa.int64()))
        self.control_docs = picked.column("doc_ids").to_pylist()
        self.control_half = picked.column("half").to_numpy().astype(np.int64)
        self.control_draw = picked.column("draw").to_numpy().astype(np.int64)
        self.control_kind = picked.column("kind").to_numpy(zero_copy_only=False)
        self.documents = split.documents(part)

    def comparison(self, kind: str, replicates: int, seed: int) -> Comparison:
        """Natural windows of the part vs its controls of ``kind``, with bootstrap draws."""
        index = {d: i for i, d in enumerate(self.documents)}
        use = self.control_kind == kind
        members = np.zeros((int(use.sum()), len(self.documents)))
        for row, docs in enumerate(d for d, u in zip(self.control_docs, use) if u):
            members[row, [index[d] for d in docs]] = 1 / len(docs)
        return Comparison(
            natural_half=self.natural_half,
            natural_groups=np.array([index[d] for d in self.natural_docs], dtype=np.int64),
            control_half=self.control_half[use],
            control_members=members,
            control_draw=self.control_draw[use],
            draws=document_draws(len(self.documents), replicates, seed),
            control_counts=control_counts(int(use.sum()), replicates, seed + 1),
        )

    def kind_rows(self, kind: str) -> np.ndarray:
        return self.control_rows[self.control_kind == kind]


def _tuning(
    natural: WindowScores, controls: WindowScores, part: _Part, method: str
) -> tuple[Choice, dict[str, object]] | None:
    """The calibrated choice on the tuning part, with what it was chosen from."""
    rows = part.kind_rows(CONCATENATED)
    if not len(part.natural_rows) or not len(rows):
        return None
    comparison = part.comparison(CONCATENATED, 1, 0)  # point AUCs only: no bootstrap
    nat, ctl = natural.take(part.natural_rows), controls.take(rows)
    found = candidates(nat, ctl, comparison, natural, method)
    by_draw = [
        candidates(nat, ctl, comparison, natural, method, comparison.control_draw == d)[0]
        for d in range(DRAWS)
    ]
    sweep = {repr(c.alpha): c.auc for c in found if c.heads is None}
    return found[0], {
        "documents": len(part.documents),
        "natural_windows": len(part.natural_rows),
        "controls": len(rows),
        "alpha_sweep": {repr(a): sweep[repr(a)] for a in ALPHAS},
        "candidates": [c.as_dict() for c in found[:5]],
        "chosen": found[0].as_dict(),
        "by_draw": [c.as_dict() for c in by_draw],
        "draws_agree": all((c.heads, c.alpha) == (found[0].heads, found[0].alpha) for c in by_draw),
    }


def _cut(settings: SelectionSettings, summary: SelectionSummary) -> float | None:
    return settings.value if settings.rule == "threshold" else summary.cut_lds


def diagnose(
    natural: pa.Table,
    controls: pa.Table,
    split: DocumentSplit,
    settings: DiagnosticsSettings,
    summarize: Callable[[SelectionSettings], SelectionSummary],
    *,
    seed_key: str,
) -> dict[str, object]:
    """The diagnostics record (see the module docstring).

    ``natural``: data_id, doc_id, ds, du, ds_heads, du_heads of a sample of the category's
    windows; ``controls``: ds, du, ds_heads, du_heads, kind, part, half, draw, doc_ids;
    ``summarize``: the category's selection summary under the given settings.
    """
    chosen, method = settings.selection, settings.selection.normalize
    nat, ctl = WindowScores.of(natural), WindowScores.of(controls)
    parts = {part: _Part(natural, controls, split, part) for part in (TUNING, EVALUATION)}
    tuned = _tuning(nat, ctl, parts[TUNING], method) if split.calibrates else None
    calibrated = tuned[0].settings(chosen) if tuned else None
    judged = {"lds": (chosen, summarize(chosen))}
    if calibrated is not None:
        judged[CALIBRATED] = (calibrated, summarize(calibrated))
    evaluation = parts[EVALUATION]
    eval_nat = nat.take(evaluation.natural_rows)
    separation: dict[str, dict[str, dict]] = {}
    heads: dict[str, dict[str, list[dict]]] = {}
    kept: dict[str, dict[str, float | None]] = {
        name: {"natural": summary.kept / summary.n if summary.n else None}
        for name, (_, summary) in judged.items()
    }
    histogram_groups = {}
    for kind in CONTROL_KINDS:
        rows = evaluation.kind_rows(kind)
        if not len(rows) or not len(evaluation.natural_rows):
            continue
        eval_ctl = ctl.take(rows)
        comparison = evaluation.comparison(
            kind, settings.replicates, _seed(f"{seed_key}:{settings.seed}")
        )
        ldses = {
            name: [
                s.lds(use.heads, use.alpha, method, (summary.stats.ds, summary.stats.du))
                for s in (eval_nat, eval_ctl)
            ]
            for name, (use, summary) in judged.items()
        }
        means = [s.mean(chosen.heads) for s in (eval_nat, eval_ctl)]
        natural_rows = [*(ldses[n][0] for n in judged), means[0][0], -means[0][1],
                        *eval_nat.head_lds(chosen.alpha, method, nat), *eval_nat.ds_heads.T, *(-eval_nat.du_heads.T)]  # fmt: skip
        control_rows = [*(ldses[n][1] for n in judged), means[1][0], -means[1][1],
                        *eval_ctl.head_lds(chosen.alpha, method, nat), *eval_ctl.ds_heads.T, *(-eval_ctl.du_heads.T)]  # fmt: skip
        found = comparison.separations(np.vstack(natural_rows), np.vstack(control_rows))
        names = [*judged, "ds", "-du"]
        separation[kind] = {name: found[i].as_dict() for i, name in enumerate(names)}
        per_head = found[len(names) :]
        heads[kind] = {
            score: [s.as_dict() for s in per_head[i * nat.heads : (i + 1) * nat.heads]]
            for i, score in enumerate(SCORES)
        }
        for name, (use, summary) in judged.items():
            bar = _cut(use, summary)
            kept[name][kind] = 0.0 if bar is None else float(np.mean(ldses[name][1] >= bar))
        histogram_groups[kind] = ldses["lds"][1]
        histogram_groups.setdefault("natural", ldses["lds"][0])
    record: dict[str, object] = {
        "settings": chosen.as_dict(),
        "calibrated": None
        if tuned is None
        else {"settings": calibrated.as_dict(), "tuning": tuned[1]},
        "split": split.as_record(),
        "windows": judged["lds"][1].n,
        "documents": {part: len(p.documents) for part, p in parts.items()},
        "natural_windows": {part: len(p.natural_rows) for part, p in parts.items()},
        "controls": {
            part: {kind: len(p.kind_rows(kind)) for kind in CONTROL_KINDS if len(p.kind_rows(kind))}
            for part, p in parts.items()
        },
        "heads_scored": nat.heads,
        "replicates": settings.replicates,
        "interval_level": LEVEL,
        "separation": separation,
        "heads": heads,
        "ds_du_spearman": {
            "natural": spearman(nat.ds, nat.du),
            "per_head": [
                spearman(nat.ds_heads[:, h], nat.du_heads[:, h]) for h in range(nat.heads)
            ],
        },
        "keep_bar_lds": _cut(chosen, judged["lds"][1]),
        "kept_share": kept["lds"],
        "kept_share_calibrated": kept.get(CALIBRATED),
        "lds_histogram": histogram(
            {"natural": histogram_groups.pop("natural", np.zeros(0)), **histogram_groups}
        ),
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


def describe(settings: dict) -> str:
    """ "the paper's settings", or the heads and alpha that differ from them."""
    heads, alpha = settings["heads"], settings["alpha"]
    if heads is None and alpha == DEFAULT_ALPHA and settings["normalize"] == "zscore":
        return "the paper's settings (every head, alpha 0.5)"
    return f"heads {'all' if heads is None else heads}, alpha {alpha:g}"


def _auc_text(found: dict) -> str:
    return f"AUC {found['auc']:.2f} (95% interval {found['low']:.2f} to {found['high']:.2f})"


def verdict(record: dict) -> tuple[bool, str]:
    """Do the given or the calibrated settings separate natural windows from concatenations,
    judged on held-out documents? With what to try when neither does."""
    found = record["separation"].get(CONCATENATED)
    refused = record["split"]["refused"]
    if found is None:
        return False, (
            "LDS could not be tested against concatenated controls: they need windows of at "
            "least two documents in each half of the evaluation part. Add documents, or shorter windows."
        )
    given, calibrated = found["lds"], found.get(CALIBRATED)
    name = describe(record["settings"])
    lines = []
    given_ok = given["low"] > 0.5
    lines.append(
        f"LDS with {name} {'ranks' if given_ok else 'does not rank'} natural windows above "
        f"concatenations of other documents' paragraphs: held-out {_auc_text(given)}"
        + ("." if given_ok else ", 0.5 = chance.")
    )
    calibrated_ok = calibrated is not None and calibrated["low"] > 0.5
    if calibrated is None:
        lines.append(f"No calibrated settings: {refused}.")
    else:
        tuning = record["calibrated"]["tuning"]
        chosen = describe(record["calibrated"]["settings"])
        agree = (
            "both draws of controls chose them"
            if tuning["draws_agree"]
            else "the two draws of controls chose differently"
        )
        lines.append(
            f"Calibrated on {tuning['documents']} other documents ({chosen}; {agree}): held-out "
            f"{_auc_text(calibrated)}"
            + (
                ". Select with them: calibrated: true in longabc_dataset's config, or longattn select --calibrated."
                if calibrated_ok and not given_ok
                else "."
            )
        )
    passed = given_ok or calibrated_ok
    if not passed:
        lines.append(
            "Neither separates: the selection is not keeping long-range-dependent text on this "
            "corpus with this model. Try: a larger model (LONGATTN_MODEL: the paper used "
            "Llama-3.1-70B at 32K tokens); longer windows (LONGATTN_WINDOW_SIZE, within the "
            f"model's context length); more documents (-DU alone: held-out AUC {found['-du']['auc']:.2f}"
            + (
                "; alpha_sweep in the metadata and diagnostics.json gives the tuning part's AUC for each alpha)."
                if calibrated is not None
                else ")."
            )
        )
    return passed, " ".join(lines)


def _cell(found: dict | None) -> str:
    return (
        "n/a" if found is None else f"{found['auc']:.2f} [{found['low']:.2f}, {found['high']:.2f}]"
    )


def _share(shares: dict | None, key: str) -> str:
    value = None if shares is None else shares.get(key)
    return "n/a" if value is None else f"{value:.2f}"


def markdown_table(record: dict) -> str:
    """Held-out AUC (95% interval) of each score against each control, and the share kept."""
    calibrated = record["calibrated"]
    head = "LDS, calibrated" + (f" ({describe(calibrated['settings'])})" if calibrated else "")
    lines = [
        f"| natural vs | LDS, {describe(record['settings'])} | {head} | DS | -DU | draw spread (LDS) | share kept |",
        "|---|---|---|---|---|---|---|",
    ]
    share, share_calibrated = record["kept_share"], record["kept_share_calibrated"]
    for kind in CONTROL_KINDS:
        found = record["separation"].get(kind)
        if found is None:
            lines.append(f"| {kind} | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        spreads = " / ".join(
            "n/a" if s is None or s.get("spread") is None else f"{s['spread']:.2f}"
            for s in (found["lds"], found.get(CALIBRATED))
            if s is not None
        )
        cells = [
            _cell(found["lds"]),
            _cell(found.get(CALIBRATED)),
            _cell(found["ds"]),
            _cell(found["-du"]),
        ]
        kept = _share(share, kind) + (
            f" / {_share(share_calibrated, kind)}" if share_calibrated else ""
        )
        lines.append(f"| {kind} | {' | '.join(cells)} | {spreads} | {kept} |")
    natural = _share(share, "natural") + (
        f" / {_share(share_calibrated, 'natural')}" if share_calibrated else ""
    )
    lines.append(f"| (natural windows kept) | | | | | | {natural} |")
    return "\n".join(lines)


def facts(record: dict) -> str:
    """What was compared with what, in one paragraph (the card and the report)."""
    n, docs, controls = record["natural_windows"], record["documents"], record["controls"]
    tuning = (
        f"Calibrated on the tuning part: {docs[TUNING]} other documents ({n[TUNING]:,} natural windows, "
        f"{controls[TUNING].get(CONCATENATED, 0)} concatenated controls). "
        if record["calibrated"]
        else f"No tuning part: {record['split']['refused']}. "
    )
    return (
        f"Held out: {n[EVALUATION]:,} natural windows of {docs[EVALUATION]} evaluation documents against "
        f"{', '.join(f'{c} {k}' for k, c in controls[EVALUATION].items()) or 'no'} control windows, each cut "
        "from whole paragraphs or code blocks of documents of the other half of that part, never from the "
        f"documents it is compared with. {tuning}AUC = probability that a natural window scores higher "
        f"(0.5: no separation); {int(record['interval_level'] * 100)}% bootstrap interval over documents "
        f"({record['replicates']:,} replicates); draw spread: how far the AUC moves between two "
        f"independent draws of controls. Spearman(ds, du) over natural windows: "
        f"{record['ds_du_spearman']['natural']:+.2f}."
    )


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
    lines += [record["advice"], "", markdown_table(record), "", facts(record)]
    judged = {"given": record["settings"]}
    if record["calibrated"]:
        judged["calibrated"] = record["calibrated"]["settings"]
    if settings.as_dict() == judged.get("calibrated"):
        lines += ["", "This dataset is selected with the calibrated settings."]
    elif settings.as_dict() == judged["given"]:
        lines += ["", f"This dataset is selected with {describe(judged['given'])}."]
    else:
        lines += [
            "",
            f"Computed for the settings {judged['given']}"
            + (f" and {judged['calibrated']}" if "calibrated" in judged else "")
            + f", not this dataset's {settings.as_dict()}.",
        ]
    return "\n".join([*lines, ""])
