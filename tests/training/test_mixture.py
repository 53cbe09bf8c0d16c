"""A mixture of categories: drawn by LDS rank up to each budget, shuffled with a seed."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from longattn_assets.training.export import ExportSettings, export_mixture
from longattn_assets.training.inputs import read_selection
from longattn_assets.training.plan import MixtureError, MixtureSettings
from tests.training.conftest import (
    CATEGORIES,
    WINDOW,
    folder_bytes,
    kept_in_rank_order,
    read_hf,
    read_mds,
    read_megatron,
    window_tokens,
)

VOCAB = 49152
PER_WINDOW = WINDOW + 1  # with the scorer's BOS


def _mix(root: Path, out: Path, memory_budget: str = "512MB", **mixture):
    selections = [read_selection(root / "longabc_dataset" / f"category={c}") for c in CATEGORIES]
    settings = ExportSettings.from_options(memory_budget=memory_budget)
    return export_mixture(selections, out, settings, MixtureSettings.from_options(**mixture), vocab_size=VOCAB)


@pytest.fixture(scope="module")
def mixed(selected_template, tmp_path_factory) -> tuple[Path, Path]:
    _, root = selected_template
    out = tmp_path_factory.mktemp("mixture") / "mix"
    _mix(root, out, token_budgets=f"code={12 * PER_WINDOW},book={8 * PER_WINDOW}", seed=7)
    return root, out


def test_each_category_gives_its_best_ranked_windows_up_to_its_budget(mixed, tmp_path):
    root, out = mixed
    expected = {"code": kept_in_rank_order(root, "code")[:12], "book": kept_in_rank_order(root, "book")[:8]}
    documents = pq.read_table(out / "documents.parquet").to_pylist()
    by_category = collections.defaultdict(list)
    for row in documents:
        by_category[row["category"]].append(row["data_id"])
    assert {c: sorted(ids) for c, ids in by_category.items()} == {c: sorted(ids) for c, ids in expected.items()}
    record = json.loads((out / "export.json").read_text())
    assert {c: v["tokens"] for c, v in record["categories"].items()} == {"code": 12 * PER_WINDOW, "book": 8 * PER_WINDOW}
    assert record["tokens"] == 20 * PER_WINDOW

    tokens = {**window_tokens(root, "code"), **window_tokens(root, "book")}
    order = [row["data_id"] for row in documents]
    expected_ids = [[1, *tokens[d]] for d in order]
    mds = read_mds(out / "mds")
    assert [s["data_id"] for s in mds] == order
    assert [s["category"] for s in mds] == [row["category"] for row in documents]
    assert [s["input_ids"].tolist() for s in mds] == expected_ids
    assert [d.tolist() for d in read_megatron(out / "megatron" / "longabc")] == expected_ids
    hf = read_hf(out / "hf", tmp_path / "hf-cache")
    assert hf["data_id"] == order and hf["input_ids"] == expected_ids


def test_the_categories_are_shuffled_together(mixed):
    _, out = mixed
    categories = pq.read_table(out / "documents.parquet").column("category").to_pylist()
    runs = sum(1 for a, b in zip(categories, categories[1:]) if a != b) + 1
    assert runs > 4  # interleaved, not one block per category


def test_the_same_seed_gives_the_same_bytes_and_another_seed_another_order(mixed, tmp_path):
    root, out = mixed
    budgets = f"code={12 * PER_WINDOW},book={8 * PER_WINDOW}"
    _mix(root, tmp_path / "again", memory_budget="8KB", token_budgets=budgets, seed=7)  # many buckets
    assert folder_bytes(tmp_path / "again") == folder_bytes(out)
    _mix(root, tmp_path / "other", token_budgets=budgets, seed=8)
    first, other = (pq.read_table(p / "documents.parquet").column("data_id").to_pylist() for p in (out, tmp_path / "other"))
    assert sorted(first) == sorted(other) and first != other


def test_weights_and_a_total_give_exact_shares(selected_template, tmp_path):
    _, root = selected_template
    result = _mix(root, tmp_path / "mix", weights="code=3,book=1", total_tokens=16 * PER_WINDOW)
    tokens = {c: v["tokens"] for c, v in result.record["categories"].items()}
    assert tokens == {"code": 12 * PER_WINDOW, "book": 4 * PER_WINDOW}
    assert result.record["mixture"]["weights"] == {"code": 3.0, "book": 1.0}


def test_weights_alone_make_the_largest_mixture_the_selections_allow(selected_template, tmp_path):
    _, root = selected_template
    kept = {c: len(kept_in_rank_order(root, c)) for c in CATEGORIES}
    result = _mix(root, tmp_path / "mix")  # equal weights by default
    windows = {c: v["windows"] for c, v in result.record["categories"].items()}
    assert windows == dict.fromkeys(CATEGORIES, min(kept.values()))


def test_a_budget_beyond_what_was_kept_is_refused(selected_template, tmp_path):
    _, root = selected_template
    kept = len(kept_in_rank_order(root, "book"))
    with pytest.raises(MixtureError, match=r"book: the mixture asks .* but its selection kept") as caught:
        _mix(root, tmp_path / "mix", token_budgets=f"code=100,book={(kept + 1) * PER_WINDOW}")
    assert "keep more windows in longabc_dataset" in str(caught.value)
    assert not (tmp_path / "mix").exists()


def test_mixture_settings_say_what_is_wrong():
    with pytest.raises(MixtureError, match="token budgets or weights, not both"):
        MixtureSettings.from_options(token_budgets="code=1", weights="code=1")
    with pytest.raises(MixtureError, match="total_tokens goes with weights"):
        MixtureSettings.from_options(token_budgets="code=1", total_tokens=5)
    with pytest.raises(MixtureError, match="no selection of poetry"):
        MixtureSettings.from_options(weights="poetry=1").categories(["code", "book"])
    # weights are read as the decimals written: 0.1 + 0.2 of 30 tokens is 10 and 20
    assert MixtureSettings.from_options(weights="a=0.1,b=0.2", total_tokens=30).budgets({"a": 99, "b": 99}) == {
        "a": 10, "b": 20,
    }  # fmt: skip
