"""Rope scaling overrides and the scored layer: bad values are one line before any work, and the
layer a dataset was scored at is recorded with its scores, in selection.json and in the card."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from longattn_assets.cli import main
from longattn_assets.provenance import read_provenance
from tests.corpus_fixtures import stdlib_sources, write_jsonl

# The values issue 23 found accepted (factor 0 or -1 scored NaN) or answered with a traceback.
BAD_ROPE_SCALING = [
    ('{"rope_type": "linear", "factor": 0}', "'factor' must be a finite number > 0"),
    ('{"rope_type": "linear", "factor": -1}', "'factor' must be a finite number > 0"),
    ('{"rope_type": "linear", "factor": NaN}', "'factor' must be a finite number > 0"),
    ('{"rope_type": "stretchy", "factor": 2}', "rope_type 'stretchy' is not one of"),
    ('{"rope_type": "linear"}', "linear rope needs 'factor'"),
    ('{"rope_type": "linear", "factor": "four"}', "'factor' must be a finite number > 0"),
    ('{"factor": 4}', "rope_type None is not one of"),
    ('{"rope_type": "llama3", "factor": 8}', "llama3 rope needs 'low_freq_factor'"),
    ('{"rope_type": "longrope", "short_factor": [1, 0], "long_factor": [1, 2]}', "'short_factor' must be"),
]


@pytest.fixture
def windows_file(tmp_path: Path) -> Path:
    """A real windows file (the option is checked before it is read, so any file would do)."""
    rows = [{"id": name, "text": text} for name, text in stdlib_sources(1, min_chars=3_000)]
    windows = tmp_path / "w.parquet"
    assert main(["window", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--category", "code",
                 "--output", str(windows), "--window-size", "256"]) == 0  # fmt: skip
    return windows


@pytest.mark.parametrize("value,problem", BAD_ROPE_SCALING, ids=[v for v, _ in BAD_ROPE_SCALING])
def test_bad_rope_scaling_is_one_line_exit_2_and_writes_nothing(windows_file, tmp_path, capsys, value, problem):
    from longattn_assets.validation import rope_parameters_problem

    capsys.readouterr()
    out = tmp_path / "s.parquet"
    assert main(["score", str(windows_file), "--output", str(out), "--rope-scaling", value]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"longattn: error: --rope-scaling: got {value!r}, expected a JSON object")
    assert not out.exists()
    assert problem in rope_parameters_problem(json.loads(value))


def test_bad_rope_scaling_fails_the_dagster_run_before_any_step(tmp_path: Path):
    from longattn_assets.assets.windows import windowed_chunks
    from longattn_assets.definitions import default_resources
    from longattn_assets.resources import AttentionScorer, DataRoot

    result = dg.materialize(
        [windowed_chunks],
        partition_key="code|00000",
        resources=default_resources()
        | {"data_root": DataRoot(root=str(tmp_path)), "attention_scorer": AttentionScorer.configure_at_launch()},
        run_config={"resources": {"attention_scorer": {"config": {"rope_scaling": '{"rope_type": "linear", "factor": 0}'}}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure).event_specific_data.error.to_string()
    assert "attention_scorer.rope_scaling: got '{\"rope_type\": \"linear\", \"factor\": 0}'" in failure
    assert not any(e.is_step_start for e in result.all_events)


def test_the_scored_layer_is_in_the_scores_recipe_selection_json_and_card(windows_file, tmp_path, capsys, monkeypatch):
    # --layer wins over LONGATTN_LAYER, which wins over the default 0; each layer is another
    # model fingerprint, so scores of two layers are never mixed or taken for each other.
    monkeypatch.setenv("LONGATTN_LAYER", "1")
    recipes = {}
    for name, extra in {"env": [], "flag": ["--layer", "0"]}.items():
        out = tmp_path / f"{name}.parquet"
        assert main(["score", str(windows_file), "--output", str(out), "--device", "cpu", *extra]) == 0
        recipes[name] = read_provenance(out).recipe
    assert (recipes["env"]["layer"], recipes["flag"]["layer"]) == (1, 0)
    assert recipes["env"]["model"] != recipes["flag"]["model"]

    selection = tmp_path / "selected"
    assert main(["select", "--windows", str(windows_file), "--scores", str(tmp_path / "env.parquet"),
                 "--output", str(selection)]) == 0  # fmt: skip
    record = json.loads((selection / "selection.json").read_text())
    assert record["inputs"]["scores_recipe"]["layer"] == 1
    assert "| scores layer | 1 |" in (selection / "hf" / "README.md").read_text()


def test_slurm_tasks_score_with_the_resource_s_layer_and_rope():
    # The array tasks run `longattn score`: the layer and rope overrides must reach them, or
    # their scores would come from another layer than the resource's.
    from longattn_assets.assets.slurm_scoring import scorer_options
    from longattn_assets.resources import AttentionScorer

    scaling = '{"rope_type": "linear", "factor": 2}'
    options = scorer_options(AttentionScorer(device="cpu", layer=2, rope_theta=5e5, rope_scaling=scaling))
    assert options[options.index("--layer") + 1] == "2"
    assert options[options.index("--rope-theta") + 1] == "500000.0"
    assert options[options.index("--rope-scaling") + 1] == scaling
    assert "--rope-theta" not in scorer_options(AttentionScorer(device="cpu"))
