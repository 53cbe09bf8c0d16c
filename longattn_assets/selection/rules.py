"""Selection settings: the normalization, alpha, the heads and the one rule that sets how many windows stay."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Literal

from ..validation import Normalize, check

RuleKind = Literal["fraction", "token_budget", "threshold"]

DEFAULT_KEEP_FRACTION = 0.5
DEFAULT_ALPHA = 0.5
# The options a selection is set with, as the CLI and the run config name them.
OPTION_NAMES = ("normalize", "alpha", "keep_fraction", "token_budget", "threshold", "heads")


@dataclass(frozen=True)
class SelectionSettings:
    normalize: Normalize = "zscore"
    alpha: float = DEFAULT_ALPHA
    rule: RuleKind = "fraction"
    value: float = DEFAULT_KEEP_FRACTION
    # Query heads whose mean gives ds and du (None: every head, the paper's definition).
    # scorer_diagnostics names the heads that separate natural text from controls best.
    heads: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.heads is not None:  # read back from JSON as a list
            object.__setattr__(self, "heads", tuple(self.heads))

    @classmethod
    def from_options(
        cls,
        *,
        normalize: str = "zscore",
        alpha: float = DEFAULT_ALPHA,
        keep_fraction: float | None = None,
        token_budget: int | None = None,
        threshold: float | None = None,
        heads: Sequence[int] | None = None,
    ) -> SelectionSettings:
        """Exactly one rule may be given; with none, keep the paper's top half.

        Each value is checked by validation.py (InvalidSetting names the option)."""
        given = {
            name: check(option, value)
            for name, option, value in (
                ("fraction", "keep_fraction", keep_fraction),
                ("token_budget", "token_budget", token_budget),
                ("threshold", "threshold", threshold),
            )
            if value is not None
        }
        if len(given) > 1:
            raise ValueError(f"give exactly one selection rule, got {sorted(given)}")
        rule, value = next(iter(given.items()), ("fraction", DEFAULT_KEEP_FRACTION))
        return cls(
            normalize=check("normalize", normalize),
            alpha=check("alpha", alpha),
            rule=rule,
            value=value,
            heads=None if heads is None else tuple(check("heads", heads)),
        )

    @classmethod
    def from_fields(cls, source: object) -> SelectionSettings:
        """From an object with one attribute per option (the CLI's arguments, a run's config)."""
        return cls.from_options(**{name: getattr(source, name) for name in OPTION_NAMES})

    def as_dict(self) -> dict[str, object]:
        facts = asdict(self)
        facts["heads"] = None if self.heads is None else list(self.heads)
        return facts

    def options(self) -> dict[str, object]:
        """The keyword arguments of ``from_options`` (and of the selection functions)."""
        rule_option = {"fraction": "keep_fraction"}.get(self.rule, self.rule)
        return {
            "normalize": self.normalize, "alpha": self.alpha, rule_option: self.value,
            "heads": self.heads,
        }  # fmt: skip


def fraction_keep_count(n: int, fraction: float) -> int:
    """floor(n * f), with f read as the decimal it was written as.

    Reading 0.29 as the exact binary double would give floor(100 * 0.29) = 28; the decimal
    reading gives 29, which is what a person asking for 29% of 100 windows means.
    """
    return math.floor(n * Fraction(repr(fraction)))
