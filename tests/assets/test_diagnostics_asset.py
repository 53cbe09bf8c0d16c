"""scorer_diagnostics through Dagster: files, UI metadata, the warning check, the card and report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import torch

from longattn_assets.definitions import assets
from longattn_assets.partitions import shard_partitions
from longattn_assets.resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from longattn_assets.scoring import scorer as scorer_module
from longattn_assets.scoring.kernel_choice import KernelChoice
from tests.corpus_fixtures import stdlib_sources, write_jsonl

WINDOW = 256
PER_KIND = 8
CONFIG = {
    "ops": {
        "scorer_diagnostics": {
            "config": {"controls_per_kind": PER_KIND, "bootstrap_replicates": 200}
        }
    }
}


def _score_category(corpus: Path, root: Path) -> tuple[dict, dict]:
    resources = {
        "data_root": DataRoot(root=str(root)),
        "corpus_input": CorpusInput(input_dir=str(corpus)),
        "windowing": Windowing(window_size=WINDOW),
        "attention_scorer": AttentionScorer(device="cpu"),
    }
    by_key = {a.key.to_user_string(): a for a in assets}
    assert dg.materialize(
        assets, selection=[by_key["raw_corpus"]], partition_key="code", resources=resources
    ).success
    for shard in shard_partitions.get_partition_keys():
        key = dg.MultiPartitionKey({"category": "code", "shard": shard})
        selection = [by_key["windowed_chunks"], by_key["scored_chunks"]]
        assert dg.materialize(
            assets, selection=selection, partition_key=key, resources=resources
        ).success
    return resources, by_key


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Twelve modules of 3-16 K characters: about a hundred windows of 256 tokens."""
    root = tmp_path_factory.mktemp("input")
    sources = [
        (name, text) for name, text in stdlib_sources(80, min_chars=3_000) if len(text) < 16_000
    ][:12]
    write_jsonl(
        root / "code/part-0.jsonl", [{"id": f"code/{name}", "text": text} for name, text in sources]
    )
    return root


@pytest.fixture(scope="module")
def scored_once(corpus: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scored") / "data"
    _score_category(corpus, root)
    return root


@pytest.fixture
def scored(scored_once: Path, corpus: Path, tmp_path: Path) -> tuple[Path, dict, dict]:
    """A copy of the scored category, and the resources and assets to go on with."""
    root = tmp_path / "data"
    shutil.copytree(scored_once, root)
    resources = {
        "data_root": DataRoot(root=str(root)),
        "corpus_input": CorpusInput(input_dir=str(corpus)),
        "windowing": Windowing(window_size=WINDOW),
        "attention_scorer": AttentionScorer(device="cpu"),
    }
    return root, resources, {a.key.to_user_string(): a for a in assets}


def _diagnose(resources: dict, by_key: dict) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        assets, selection=[by_key["scorer_diagnostics"]], partition_key="code",
        resources=resources, run_config=CONFIG,
    )  # fmt: skip
    assert result.success
    return result


def test_diagnostics_files_metadata_check_card_and_report(scored):
    root, resources, by_key = scored
    scores_before = {
        p.name: p.read_bytes() for p in (root / "scored_chunks/category=code").glob("*.parquet")
    }
    result = _diagnose(resources, by_key)
    folder = root / "scorer_diagnostics/category=code"
    record = json.loads((folder / "diagnostics.json").read_text())
    assert record["controls"] == {
        "concatenated": PER_KIND,
        "repeated": PER_KIND,
        "shuffled": PER_KIND,
    }
    assert set(record["separation"]) == {"concatenated", "repeated", "shuffled"}
    assert len(record["heads"]["concatenated"]["-du"]) == 9  # SmolLM2's query heads
    meta = result.asset_materializations_for_node("scorer_diagnostics")[0].metadata
    for key in ("lds_auc_concatenated", "ds_auc_repeated", "neg_du_auc_shuffled", "share_kept_concatenated",
                "ds_du_spearman", "separation", "best_heads", "advice"):  # fmt: skip
        assert key in meta
    assert meta["plots"].value.count("data:image/png;base64,") == 3
    inline = meta["separation_plot"].value  # shown in place by the UI: under its 1,000 characters
    assert inline.startswith("![separation](<data:image/svg+xml,") and len(inline) < 1000
    assert all(kind in inline for kind in ("concatenated", "repeated", "shuffled"))
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "lds_separates_concatenated"
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.passed == record["lds_separates_concatenated"]

    # Controls are scored beside the category, never into it, and never selected.
    controls = pq.read_table(folder / "controls.parquet")
    control_scores = pq.read_table(folder / "control_scores.parquet")
    assert control_scores.column("data_id").to_pylist() == controls.column("data_id").to_pylist()
    assert {
        p.name: p.read_bytes() for p in (root / "scored_chunks/category=code").glob("*.parquet")
    } == scores_before
    selection = dg.materialize(
        assets, selection=[by_key["longabc_dataset"], by_key["longabc_report"]],
        partition_key="code", resources=resources,
    )  # fmt: skip
    assert selection.success
    dataset = root / "longabc_dataset/category=code"
    selected = set(pq.read_table(dataset / "selected.parquet").column("data_id").to_pylist())
    assert selected and not selected & set(controls.column("data_id").to_pylist())
    windows = sum(
        pq.read_metadata(p).num_rows
        for p in (root / "scored_chunks/category=code").glob("*.parquet")
    )
    assert json.loads((dataset / "selection.json").read_text())["n"] == windows
    card = (dataset / "hf/README.md").read_text()
    settings_at, diagnostics_at = card.index("## Settings"), card.index("## Scorer diagnostics")
    assert settings_at < diagnostics_at < card.index("## Statistics")
    assert "| concatenated |" in card and record["advice"] in card
    page = (root / "longabc_report/category=code/report.html").read_text()
    assert 'id="scorer-diagnostics"' in page and page.count('id="plot-diagnostics-') == 3


def test_controls_and_diagnostics_are_the_same_on_a_rerun(scored):
    root, resources, by_key = scored
    folder = root / "scorer_diagnostics/category=code"
    _diagnose(resources, by_key)
    names = ("controls.parquet", "control_scores.parquet", "diagnostics.json")
    first = {name: (folder / name).read_bytes() for name in names}
    _diagnose(resources, by_key)
    assert {name: (folder / name).read_bytes() for name in names} == first


def test_the_card_and_report_never_show_diagnostics_of_other_scores(scored):
    root, resources, by_key = scored
    _diagnose(resources, by_key)
    # The category rescored under another rope_theta: current scores (the dataset takes only
    # a category scored under one set of settings), not the ones the diagnostics were made from.
    other = resources | {"attention_scorer": AttentionScorer(device="cpu", rope_theta=10000.0)}
    for shard in shard_partitions.get_partition_keys():
        key = dg.MultiPartitionKey({"category": "code", "shard": shard})
        assert dg.materialize(
            assets, selection=[by_key["scored_chunks"]], partition_key=key, resources=other
        ).success
    selection = [by_key["longabc_dataset"], by_key["longabc_report"]]
    assert dg.materialize(
        assets, selection=selection, partition_key="code", resources=other
    ).success
    card = (root / "longabc_dataset/category=code/hf/README.md").read_text()
    assert "## Scorer diagnostics\n\nNot computed for these scores" in card
    page = (root / "longabc_report/category=code/report.html").read_text()
    assert "Not computed for these scores" in page and "plot-diagnostics-" not in page


@pytest.fixture
def random_statistics(monkeypatch):
    """A scorer that cannot separate anything: every head's ds and du are random numbers."""
    generator = torch.Generator().manual_seed(0)

    def statistics(q, k):
        heads = q.shape[0]
        return torch.rand(heads, generator=generator), torch.rand(heads, generator=generator)

    def choose(*args, **kwargs):
        return KernelChoice("random", statistics, "random")

    monkeypatch.setattr(scorer_module, "choose_statistics_kernel", choose)


def test_the_check_warns_when_the_scorer_cannot_separate(
    random_statistics, corpus: Path, tmp_path: Path
):
    resources, by_key = _score_category(corpus, tmp_path / "data")
    result = _diagnose(resources, by_key)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    advice = evaluation.metadata["advice"].value
    assert "does not separate" in advice
    for hint in ("larger model", "longer windows", "alpha", "heads"):
        assert hint in advice
    assert evaluation.metadata["lds_auc_low"].value <= 0.5
