"""Which kept windows an export writes, and in what order.

A category's export writes every window its selection kept, best LDS first (rank order).
A mixture draws from each category its best-ranked windows until the category's token
budget is reached (as a selection's token budget: the shortest prefix of the ranking that
reaches it) and orders all of them by a seeded hash of their data_id: a shuffle that
depends on the seed and the ids only, so the same settings always give the same order.
Budgets count the tokens written (the window's, plus the BOS when it is included).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..validation import check
from .inputs import Selection


class MixtureError(ValueError):
    """Mixture settings that the selections cannot satisfy."""


@dataclass(frozen=True)
class Draw:
    """The windows ranked 1..``last_rank`` of one selection."""

    selection: Selection
    last_rank: int
    tokens: int  # as written

    @property
    def windows(self) -> int:
        return self.last_rank

    @property
    def category(self) -> str:
        return self.selection.category


def whole_selection(selection: Selection, bos: bool) -> Draw:
    """Every kept window."""
    return Draw(selection, selection.kept, selection.tokens_kept + (selection.kept if bos else 0))


def draw_budget(selection: Selection, budget: int, bos: bool) -> Draw:
    """The best-ranked windows until their tokens reach ``budget`` (read from selected.parquet,
    which lists the kept windows in rank order, a batch at a time)."""
    if budget <= 0:
        return Draw(selection, 0, 0)
    total = 0
    for batch in pq.ParquetFile(selection.selected).iter_batches(batch_size=65536, columns=["rank", "n_tokens"]):
        ranks = batch.column("rank").to_numpy()
        running = total + np.cumsum(batch.column("n_tokens").to_numpy().astype(np.int64) + int(bos))
        reached = int(np.searchsorted(running, budget, side="left"))
        if reached < len(running):
            return Draw(selection, int(ranks[reached]), int(running[reached]))
        total = int(running[-1])
    raise MixtureError(
        f"{selection.category}: the mixture asks {budget:,} tokens but its selection kept {total:,}"
        f"{' (BOS included)' if bos else ''}: lower the budget or keep more windows in longabc_dataset"
    )


@dataclass(frozen=True)
class MixtureSettings:
    """Per-category token budgets, or weights (with an optional total); seed of the shuffle.

    With neither, every category gets the same weight. Weights without a total make the
    largest mixture whose budgets follow the weights from what each category kept."""

    token_budgets: Mapping[str, int] | None = None
    weights: Mapping[str, float] | None = None
    total_tokens: int | None = None
    seed: int = 0

    @classmethod
    def from_options(
        cls,
        *,
        token_budgets: object = None,
        weights: object = None,
        total_tokens: object = None,
        seed: object = 0,
    ) -> MixtureSettings:
        budgets = check("token_budgets", token_budgets)
        shares = check("weights", weights)
        if budgets is not None and shares is not None:
            raise MixtureError("give token budgets or weights, not both")
        if budgets is not None and total_tokens is not None:
            raise MixtureError("total_tokens goes with weights; token budgets already say each category's tokens")
        return cls(budgets, shares, check("total_tokens", total_tokens), check("seed", seed) or 0)

    def categories(self, available: Sequence[str]) -> list[str]:
        """The categories in the mixture: those named, else every one available."""
        named = self.token_budgets if self.token_budgets is not None else self.weights
        if named is None:
            return list(available)
        unknown = sorted(set(named) - set(available))
        if unknown:
            raise MixtureError(f"no selection of {', '.join(unknown)} to draw from (have: {', '.join(available)})")
        return [c for c in available if c in named]

    def budgets(self, available: Mapping[str, int]) -> dict[str, int]:
        """Tokens to draw per category, given the tokens each one kept (as written)."""
        if self.token_budgets is not None:
            return {c: int(self.token_budgets[c]) for c in available}
        weights = {c: Fraction(repr(float((self.weights or {}).get(c, 1.0)))) for c in available}
        whole = sum(weights.values())
        total = self.total_tokens
        if total is None:  # the largest total every category can give its share of
            total = min(math.floor(available[c] * whole / weights[c]) for c in available)
        return {c: math.floor(total * weights[c] / whole) for c in available}

    def as_dict(self) -> dict[str, object]:
        return {
            "token_budgets": None if self.token_budgets is None else dict(self.token_budgets),
            "weights": None if self.weights is None else dict(self.weights),
            "total_tokens": self.total_tokens,
            "seed": self.seed,
        }


class RankOrder:
    """Best LDS first: a window's key is its rank in its selection (one category)."""

    def __init__(self, count: int):
        self.count = max(count, 1)

    def describe(self) -> dict[str, object]:
        return {"order": "rank"}

    def keys(self, data_ids: pa.Array, ranks: np.ndarray) -> np.ndarray:
        return ranks.astype(np.uint64)

    def buckets(self, keys: np.ndarray, n: int) -> np.ndarray:
        return ((keys - np.uint64(1)) * np.uint64(n) // np.uint64(self.count)).astype(np.int64)


class SeededOrder:
    """A shuffle: a window's key is a keyed BLAKE2b hash of its data_id (ties by data_id)."""

    def __init__(self, seed: int):
        self.seed = seed
        self._key = str(seed).encode()

    def describe(self) -> dict[str, object]:
        return {"order": "shuffled", "seed": self.seed}

    def keys(self, data_ids: pa.Array, ranks: np.ndarray) -> np.ndarray:
        return np.fromiter(
            (
                int.from_bytes(
                    hashlib.blake2b(d.encode(), digest_size=8, key=self._key, person=b"longattn-mixture").digest(),
                    "big",
                )
                for d in data_ids.to_pylist()
            ),
            dtype=np.uint64,
            count=len(data_ids),
        )

    def buckets(self, keys: np.ndarray, n: int) -> np.ndarray:
        # monotone in the key, so sorted buckets read one after another are one sorted list
        return ((keys >> np.uint64(32)) * np.uint64(n) >> np.uint64(32)).astype(np.int64)
