"""longabc_training and longabc_mixture through Dagster, and `longattn export`: current or refused."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from longattn_assets.cli import main
from longattn_assets.provenance import read_provenance
from tests.training.conftest import (
    WINDOW,
    failure,
    kept_in_rank_order,
    materialize,
    read_mds,
    resources,
    window_tokens,
)

PER_WINDOW = WINDOW + 1


@pytest.fixture(scope="module")
def other_tokenizer(tmp_path_factory) -> Path:
    """A model folder whose tokenizer is SmolLM2's plus one added token: another fingerprint."""
    from longattn_assets.model.tokenizer import load_tokenizer

    folder = tmp_path_factory.mktemp("other-model")
    tokenizer = load_tokenizer().tokenizer
    tokenizer.add_tokens(["<longattn-extra>"])
    (folder / "tokenizer.json").write_text(tokenizer.to_str())
    (folder / "config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    return folder


def _training(root: Path, corpus: Path, category: str = "code", config: dict | None = None, **windowing):
    run_config = {"ops": {"longabc_training": {"config": config}}} if config else None
    return materialize(["longabc_training"], category, resources(root, corpus, **windowing), run_config=run_config)


def test_training_asset_exports_the_category_and_reuses_a_current_export(selected_root):
    corpus, root = selected_root
    result = _training(root, corpus)
    assert result.success
    meta = result.asset_materializations_for_node("longabc_training")[0].metadata
    kept = kept_in_rank_order(root, "code")
    assert meta["windows"].value == len(kept) and meta["tokens"].value == len(kept) * PER_WINDOW
    assert meta["vocab_size"].value == 49152 and meta["reused"].value is False
    assert meta["tokens_per_s"].value > 0 and meta["categories"].value["code"]["windows"] == len(kept)
    assert {f["path"] for f in meta["files"].value} >= {"megatron/longabc.idx", "mds/index.json", "hf/README.md"}
    out = root / "longabc_training" / "category=code"
    tokens = window_tokens(root, "code")
    assert [s["input_ids"].tolist() for s in read_mds(out / "mds")] == [[1, *tokens[d]] for d in kept]
    record = json.loads((out / "export.json").read_text())
    version = result.asset_materializations_for_node("longabc_training")[0].tags["dagster/data_version"]
    assert version == record["provenance"]["fingerprint"]

    again = _training(root, corpus)
    assert again.success and again.asset_materializations_for_node("longabc_training")[0].metadata["reused"].value


def test_a_new_selection_makes_the_export_redo(selected_root):
    corpus, root = selected_root
    assert _training(root, corpus).success
    run_config = {"ops": {"longabc_dataset": {"config": {"keep_fraction": 0.25}}}}
    assert materialize(["longabc_dataset"], "code", resources(root, corpus), run_config=run_config).success
    result = _training(root, corpus)
    meta = result.asset_materializations_for_node("longabc_training")[0].metadata
    assert not meta["reused"].value and meta["windows"].value == len(kept_in_rank_order(root, "code"))


def test_export_refuses_windows_that_changed_since_the_selection(selected_root):
    corpus, root = selected_root
    # shard 00001 windowed and scored again under another sample fraction, after the selection
    key = dg.MultiPartitionKey({"category": "code", "shard": "00001"})
    assert materialize(["windowed_chunks", "scored_chunks"], key, resources(root, corpus, sample_fraction=0.5)).success
    message = failure(_training(root, corpus))
    assert "code|00001: windowed_chunks was made with sample_fraction 0.5, now 1.0" in message
    assert "run: materialize windowed_chunks,scored_chunks code|00001" in message
    assert not (root / "longabc_training").exists()


def test_export_refuses_a_selection_older_than_the_current_shards(selected_root):
    corpus, root = selected_root
    # a new document arrives; its shard is ingested, windowed and scored again, not yet selected
    rows = (corpus / "code" / "part-0.jsonl").read_text()
    (corpus / "code" / "part-0.jsonl").write_text(rows + json.dumps({"id": "new", "text": "def f():\n    return 1\n" * 60}) + "\n")
    raw = root / "raw_corpus" / "category=code"
    before = {p.name: read_provenance(p).fingerprint for p in raw.glob("*.parquet")}
    assert materialize(["raw_corpus"], "code", resources(root, corpus)).success
    changed = [p.stem[len("shard=") :] for p in sorted(raw.glob("*.parquet")) if read_provenance(p).fingerprint != before[p.name]]
    assert len(changed) == 1  # the other shards' windows and scores stay current
    key = dg.MultiPartitionKey({"category": "code", "shard": changed[0]})
    assert materialize(["windowed_chunks", "scored_chunks"], key, resources(root, corpus)).success
    message = failure(_training(root, corpus))
    windows = root / "windowed_chunks" / "category=code" / f"shard={changed[0]}.parquet"
    assert f"{windows} changed since the selection" in message and "materialize longabc_dataset again" in message
    assert not (root / "longabc_training").exists()


def test_another_tokenizer_is_refused_with_why_and_where_the_text_is(selected_root, other_tokenizer):
    corpus, root = selected_root
    message = failure(_training(root, corpus, config={"tokenizer": str(other_tokenizer)}))
    assert "the scores that chose these windows belong to the scored tokens" in message
    assert str(root / "longabc_dataset" / "category=code" / "longabc.jsonl") in message
    assert not (root / "longabc_training").exists()


def test_mixture_asset_draws_each_budget_from_its_category(selected_root):
    corpus, root = selected_root
    config = {"token_budgets": {"code": 6 * PER_WINDOW, "book": 3 * PER_WINDOW}, "seed": 3}
    result = materialize(
        ["longabc_mixture"], None, resources(root, corpus), run_config={"ops": {"longabc_mixture": {"config": config}}}
    )
    assert result.success
    meta = result.asset_materializations_for_node("longabc_mixture")[0].metadata
    assert {c: v["tokens"] for c, v in meta["categories"].value.items()} == {"code": 6 * PER_WINDOW, "book": 3 * PER_WINDOW}
    documents = pq.read_table(root / "longabc_mixture" / "documents.parquet")
    drawn = set(documents.column("data_id").to_pylist())
    assert drawn == set(kept_in_rank_order(root, "code")[:6]) | set(kept_in_rank_order(root, "book")[:3])


def test_mixture_asset_of_a_category_without_a_selection_says_what_to_run(selected_root):
    corpus, root = selected_root
    message = failure(materialize(["longabc_mixture"], None, resources(root, corpus)))  # all categories: arxiv too
    assert "longabc_mixture arxiv" in message and "materialize raw_corpus arxiv" in message


def test_export_command_writes_the_formats_and_then_finds_them_current(selected_template, tmp_path, capsys):
    _, root = selected_template
    dataset = root / "longabc_dataset" / "category=book"
    argv = ["export", "--dataset", str(dataset), "--output", str(tmp_path / "out"), "--formats", "mds,hf"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    kept = kept_in_rank_order(root, "book")
    assert summary["windows"] == len(kept) and summary["formats"] == ["mds", "hf"] and not summary["reused"]
    assert [s["data_id"] for s in read_mds(tmp_path / "out" / "mds")] == kept
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["reused"] is True

    mixture = ["export", "--dataset", str(dataset), "--dataset", str(root / "longabc_dataset" / "category=code"),
               "--output", str(tmp_path / "mix"), "--token-budgets", f"book={2 * PER_WINDOW},code={PER_WINDOW}"]  # fmt: skip
    assert main(mixture) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == 3 * PER_WINDOW


def test_export_command_refuses_another_tokenizer_in_one_line(selected_template, other_tokenizer, tmp_path, capsys):
    _, root = selected_template
    dataset = root / "longabc_dataset" / "category=code"
    argv = ["export", "--dataset", str(dataset), "--output", str(tmp_path / "out"), "--model", str(other_tokenizer)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("longattn: error: code: its windows were scored as token ids")
    assert f"{other_tokenizer}'s tokenizer" in err and str(dataset / "longabc.jsonl") in err
    assert not (tmp_path / "out").exists()
