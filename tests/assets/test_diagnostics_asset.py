"""scorer_diagnostics through Dagster: files, UI metadata, the warning check, the card and
report, what makes it current, and a selection with its calibrated settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import torch

from longattn_assets.cli import main
from longattn_assets.definitions import assets
from longattn_assets.demo import run_demo
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
    # twelve documents: a tuning part with concatenations only, an evaluation part with every kind
    assert record["controls"] == {
        "tuning": {"concatenated": PER_KIND},
        "evaluation": {"concatenated": PER_KIND, "repeated": PER_KIND, "shuffled": PER_KIND},
    }
    assert record["documents"] == {"tuning": 6, "evaluation": 6}
    assert set(record["separation"]) == {"concatenated", "repeated", "shuffled"}
    assert set(record["separation"]["concatenated"]) == {"lds", "lds_calibrated", "ds", "-du"}
    assert len(record["heads"]["concatenated"]["-du"]) == 9  # SmolLM2's query heads
    assert record["recipe"]["controls_per_kind"] == PER_KIND and record["fingerprint"].startswith("dia-")
    meta = result.asset_materializations_for_node("scorer_diagnostics")[0].metadata
    for key in ("lds_auc_concatenated", "lds_calibrated_auc_concatenated", "ds_auc_repeated",
                "neg_du_auc_shuffled", "share_kept_concatenated", "lds_draw_spread_concatenated",
                "ds_du_spearman", "separation", "calibrated_settings", "alpha_sweep", "advice"):  # fmt: skip
        assert key in meta
    assert meta["alpha_sweep"].value == record["calibrated"]["tuning"]["alpha_sweep"]
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
    assert "| calibrated | no (heads and alpha as given) |" in card
    assert "This dataset is selected with the paper's settings" in card
    assert json.loads((dataset / "selection.json").read_text())["calibration"] is None
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
    assert "does not rank" in advice and "Neither separates" in advice
    for hint in ("larger model", "longer windows", "alpha_sweep"):
        assert hint in advice
    assert evaluation.metadata["lds_auc_low"].value <= 0.5
    assert evaluation.metadata["lds_calibrated_auc_low"].value <= 0.5


def _folder_bytes(root: Path) -> dict[str, bytes]:
    folder = root / "scorer_diagnostics/category=code"
    return {name: (folder / name).read_bytes() for name in ("controls.parquet", "control_scores.parquet", "diagnostics.json")}


def test_a_rerun_with_another_control_count_equals_a_fresh_run(scored, scored_once, corpus, tmp_path):
    """Issue 26 item 7: diagnostics made with 8 controls per kind are not current for a demo
    asking for 4; the demo makes them again, as a fresh run with 4 would."""
    root, resources, by_key = scored
    _diagnose(resources, by_key)
    said: list[str] = []

    def demo() -> None:
        said.clear()
        run_demo(root, window_size=WINDOW, input_dir=corpus, device="cpu", categories=["code"],
                 say=said.append, controls_per_kind=4)  # fmt: skip

    demo()
    assert any(line.strip().startswith("scorer diagnostics (4 controls per kind") for line in said)
    fresh = tmp_path / "fresh"
    shutil.copytree(scored_once, fresh)
    config = {"ops": {"scorer_diagnostics": {"config": {"controls_per_kind": 4}}}}
    assert dg.materialize(
        assets, selection=[by_key["scorer_diagnostics"]], partition_key="code",
        resources=resources | {"data_root": DataRoot(root=str(fresh))}, run_config=config,
    ).success  # fmt: skip
    assert _folder_bytes(root) == _folder_bytes(fresh)
    demo()
    assert "  scorer diagnostics: up to date" in said


def test_a_calibrated_selection_records_its_choice_and_needs_current_diagnostics(scored):
    root, resources, by_key = scored
    calibrated = {"ops": {"longabc_dataset": {"config": {"calibrated": True}}}}
    refused = dg.materialize(
        assets, selection=[by_key["longabc_dataset"]], partition_key="code", resources=resources,
        run_config=calibrated, raise_on_error=False,
    )  # fmt: skip
    assert not refused.success
    failure = refused.get_step_failure_events()[0].step_failure_data.error.message
    assert "materialize scorer_diagnostics code first" in failure
    _diagnose(resources, by_key)
    record = json.loads((root / "scorer_diagnostics/category=code/diagnostics.json").read_text())
    result = dg.materialize(
        assets, selection=[by_key["longabc_dataset"]], partition_key="code", resources=resources,
        run_config=calibrated,
    )  # fmt: skip
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    dataset = root / "longabc_dataset/category=code"
    summary = json.loads((dataset / "selection.json").read_text())
    chosen = record["calibrated"]["settings"]
    assert summary["settings"] == chosen
    assert summary["calibration"]["diagnostics"] == record["fingerprint"]
    assert summary["calibration"]["held_out_auc_concatenated"] == record["separation"]["concatenated"]["lds_calibrated"]
    card = (dataset / "hf/README.md").read_text()
    assert f"| calibrated | yes: heads {chosen['heads'] or 'all'} and alpha {chosen['alpha']:g} chosen by scorer_diagnostics ({record['fingerprint']})" in card
    assert "This dataset is selected with the calibrated settings." in card


def test_longattn_select_calibrated_reads_diagnostics_of_the_same_scores_only(scored, tmp_path, capsys):
    root, resources, by_key = scored
    _diagnose(resources, by_key)
    diagnostics = root / "scorer_diagnostics/category=code/diagnostics.json"
    windows = str(root / "windowed_chunks/category=code/*.parquet")
    scores = str(root / "scored_chunks/category=code/*.parquet")
    out = tmp_path / "selected"
    argv = ["select", "--windows", windows, "--scores", scores, "--output", str(out), "--calibrated",
            "--diagnostics", str(diagnostics)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(diagnostics.read_text())
    assert json.loads((out / "selection.json").read_text())["calibration"]["diagnostics"] == record["fingerprint"]
    record["scores_fingerprint"] = "scores-other"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(record))
    capsys.readouterr()
    assert main([*argv[:-1], str(other)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "was not made from these score files" in error
