"""Calibrated settings: heads and alpha chosen on the tuning part, offered to the selection.

The candidates are, for each alpha of ALPHAS, the k heads whose own LDS separates natural
windows from concatenated controls best on the tuning part (k = 1 .. every head; every
head is the paper's definition). The candidate whose LDS separates best on the tuning part
wins; ties go to every head, then to the alpha nearest the paper's 0.5, then to fewer heads.
The winner is judged on the evaluation part only (summary.py), which it never saw.

A selection uses the calibrated settings only when asked (``calibrated: true`` in
longabc_dataset's config, ``longattn select --calibrated``); :func:`calibrated_settings`
takes them from diagnostics made from the category's current scores, or says why not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..selection.rules import DEFAULT_ALPHA, SelectionSettings
from .scores import WindowScores
from .separation import Comparison

ALPHAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
CANDIDATES_KEPT = 5  # the best candidates written to the record, for a person to compare


@dataclass(frozen=True)
class Choice:
    heads: tuple[int, ...] | None  # None: every head
    alpha: float
    auc: float  # on the tuning part

    def rank(self) -> tuple:
        return (
            -round(self.auc, 9),
            self.heads is not None,
            abs(self.alpha - DEFAULT_ALPHA),
            len(self.heads or ()),
        )

    def settings(self, base: SelectionSettings) -> SelectionSettings:
        return replace(base, alpha=self.alpha, heads=self.heads)

    def as_dict(self) -> dict[str, object]:
        return {
            "heads": None if self.heads is None else list(self.heads),
            "alpha": self.alpha,
            "auc": self.auc,
        }


def candidates(
    natural: WindowScores,
    controls: WindowScores,
    comparison: Comparison,
    reference: WindowScores,
    method: str,
    use: np.ndarray | None = None,
) -> list[Choice]:
    """Every candidate with its tuning AUC against ``controls`` (those ``use`` picks), best first.

    ``reference``: the windows whose statistics normalize each candidate's ds and du (the
    natural sample: statistics of scores only, as the selection's are of all windows)."""
    found = []
    for alpha in ALPHAS:
        per_head = comparison.auc(
            natural.head_lds(alpha, method, reference),
            controls.head_lds(alpha, method, reference),
            use,
        )
        ranked = sorted(range(natural.heads), key=lambda h: (-per_head[h], h))
        for k in range(1, natural.heads + 1):
            heads = None if k == natural.heads else tuple(sorted(ranked[:k]))
            stats = reference.stats(heads)
            auc = comparison.auc(
                natural.lds(heads, alpha, method, stats)[None],
                controls.lds(heads, alpha, method, stats)[None],
                use,
            )[0]
            found.append(Choice(heads, alpha, float(auc)))
    return sorted(found, key=Choice.rank)


class CalibrationUnavailable(ValueError):
    """Calibrated settings were asked for but the diagnostics cannot give them."""


def calibrated_settings(
    record: dict | None, base: SelectionSettings, category: str
) -> tuple[SelectionSettings, dict[str, object]]:
    """``base`` with the heads and alpha the diagnostics ``record`` chose, and what to record
    about that choice (selection.json's ``calibration``, the dataset card)."""
    if base.heads is not None or base.alpha != DEFAULT_ALPHA:
        raise CalibrationUnavailable(
            "calibrated settings choose the heads and alpha: give neither heads nor alpha with them"
        )
    if record is None:
        raise CalibrationUnavailable(
            f"calibrated settings of {category} come from scorer_diagnostics made from its current "
            f"scores, and there are none: materialize scorer_diagnostics {category} first"
        )
    chosen = record.get("calibrated")
    if chosen is None:
        raise CalibrationUnavailable(
            f"scorer_diagnostics of {category} offers no calibrated settings: "
            f"{record['split']['refused']}; select with the paper's settings, or give heads and alpha"
        )
    normalize = chosen["settings"]["normalize"]
    if normalize != base.normalize:
        raise CalibrationUnavailable(
            f"the calibrated settings of {category} were chosen for normalize={normalize}, not "
            f"{base.normalize}: run scorer_diagnostics with normalize={base.normalize} first"
        )
    heads = chosen["settings"]["heads"]
    settings = replace(
        base, alpha=chosen["settings"]["alpha"], heads=None if heads is None else tuple(heads)
    )
    held_out = record["separation"].get("concatenated", {})
    return settings, {
        "diagnostics": record["fingerprint"],
        "heads": heads,
        "alpha": settings.alpha,
        "tuning_documents": len(sum(record["split"]["tuning"], [])),
        "evaluation_documents": len(sum(record["split"]["evaluation"], [])),
        "held_out_auc_concatenated": held_out.get("lds_calibrated"),
        "given_held_out_auc_concatenated": held_out.get("lds"),
    }
