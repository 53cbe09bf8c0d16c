"""Selection over a subset of heads: ds and du are those heads' mean, everything else as before."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from longattn_assets.selection.checks import selection_follows_rule
from longattn_assets.selection.exports import SELECTED_FILE, export_category
from longattn_assets.selection.rules import SelectionSettings
from longattn_assets.selection.select import select_category
from longattn_assets.storage import write_parquet
from tests.selection.conftest import SCORES_SCHEMA, write_category
from tests.selection.test_select import reference_selection

HEADS = 3


def _category(root: Path) -> tuple[str, str, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """30 windows whose heads disagree: head 1 ranks them in another order than the mean."""
    rng = random.Random(5)
    ids = [f"book-{i:03d}" for i in range(30)]
    layout = write_category(root, "book", {"00000": [(i, 0.1, 0.1, 64) for i in ids]})
    ds = {i: np.array([rng.random() for _ in range(HEADS)], np.float32) for i in ids}
    du = {i: np.array([rng.random() * 1e-3 for _ in range(HEADS)], np.float32) for i in ids}
    scores = {
        "data_id": ids, "n_tokens": [64] * 30,
        "ds": [float(ds[i].astype(float).mean()) for i in ids], "du": [float(du[i].astype(float).mean()) for i in ids],
        "ds_heads": [ds[i] for i in ids], "du_heads": [du[i] for i in ids], "model": ["test"] * 30,
    }  # fmt: skip
    write_parquet(
        pa.table(scores, schema=SCORES_SCHEMA), layout.shard_path("scored_chunks", "book", "00000")
    )
    return (
        layout.shard_glob("windowed_chunks", "book"),
        layout.shard_glob("scored_chunks", "book"),
        ds,
        du,
    )


@pytest.mark.parametrize("heads", [[1], [2, 0]])
def test_selection_ranks_by_the_mean_of_the_chosen_heads(tmp_path: Path, heads):
    windows, scores, ds, du = _category(tmp_path)
    result = select_category(windows, scores, keep_fraction=0.3, heads=heads)

    def mean(values: np.ndarray) -> float:
        total = 0.0
        for h in heads:  # summed in the order given, as the SQL does
            total = total + float(values[h])
        return total / len(heads)

    reference = [(i, mean(ds[i]), mean(du[i]), 64) for i in sorted(ds)]
    ranked, kept, _ = reference_selection(reference, "zscore", 0.5, "fraction", 0.3)
    assert result.table.column("data_id").to_pylist() == ranked
    assert result.table.column("ds").to_pylist() == [mean(ds[i]) for i in ranked]
    assert result.summary.kept == len(kept)
    everything = select_category(windows, scores, keep_fraction=0.3)
    assert (
        everything.table.column("data_id").to_pylist() != result.table.column("data_id").to_pylist()
    )


def test_the_rule_check_and_the_recorded_settings_follow_the_heads(tmp_path: Path):
    windows, scores, _, _ = _category(tmp_path)
    settings = SelectionSettings.from_options(alpha=2.0, heads=[1, 2])
    out = tmp_path / "out"
    export_category(windows, scores, out, category="book", settings=settings)
    passed, _ = selection_follows_rule(out / SELECTED_FILE, scores, settings)
    assert passed
    assert not selection_follows_rule(out / SELECTED_FILE, scores, SelectionSettings(alpha=2.0))[0]
    recorded = json.loads((out / "selection.json").read_text())["settings"]
    assert recorded["heads"] == [1, 2] and SelectionSettings(**recorded) == settings
    assert "| heads | [1, 2] |" in (out / "hf/README.md").read_text()


@pytest.mark.parametrize("heads", [[], [-1], [1, 1], [0.5], [True]])
def test_a_head_list_that_names_no_head_is_refused(heads):
    with pytest.raises(ValueError, match="heads"):
        SelectionSettings.from_options(heads=heads)


def test_a_head_the_scores_do_not_have_is_refused(tmp_path: Path):
    windows, scores, _, _ = _category(tmp_path)
    with pytest.raises(ValueError, match="head indices from 0 to 2: the scores have 3 heads"):
        select_category(windows, scores, heads=[3])
