"""Every option and environment variable: a bad value is one line naming it, the value and what is allowed."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import torch

from longattn_assets import settings
from longattn_assets.cli import build_parser, main
from longattn_assets.slurm.settings import SlurmSettings, slurm_enabled
from longattn_assets.validation import RULES, InvalidSetting, check
from tests.corpus_fixtures import write_jsonl

REPO = Path(__file__).resolve().parents[2]
SELECT = ["select", "--windows", "w*.parquet", "--scores", "s*.parquet", "--output", "out"]
SCORE = ["score", "WINDOWS", "--output", "s.parquet"]
WINDOW = ["window", "INPUT", "--category", "code", "--output", "w.parquet"]
EXPORT = ["export", "--dataset", "selection", "--output", "out"]

# (command, option, bad value, text of what is allowed)
BAD_OPTIONS = [
    (SELECT, "--keep-fraction", "1.5", "a number within [0, 1]"),
    (SELECT, "--keep-fraction", "-1", "a number within [0, 1]"),
    (SELECT, "--keep-fraction", "nan", "a number within [0, 1]"),
    (SELECT, "--alpha", "nan", "a finite number"),
    (SELECT, "--alpha", "inf", "a finite number"),
    (SELECT, "--threshold", "nan", "a finite number"),
    (SELECT, "--token-budget", "-5", "an integer >= 0"),
    (SELECT, "--token-budget", "1.5", "an integer >= 0"),
    (SELECT, "--normalize", "softmax", "one of zscore, minmax"),
    (SELECT, "--category", "a\nb: c", "a name of letters"),
    (SELECT, "--heads", "-1", "comma-separated distinct query head indices"),
    (SELECT, "--heads", "0,0", "comma-separated distinct query head indices"),
    (SELECT, "--heads", "1,x", "comma-separated distinct query head indices"),
    (WINDOW, "--window-size", "0", "an integer >= 1"),
    (WINDOW, "--window-size", "-5", "an integer >= 1"),
    (WINDOW, "--window-size", "abc", "an integer >= 1"),
    (WINDOW, "--window-size", "1e23", "an integer >= 1"),
    (WINDOW, "--sample-fraction", "2", "a number within (0, 1]"),
    (WINDOW, "--sample-fraction", "-1", "a number within (0, 1]"),
    (WINDOW, "--sample-fraction", "nan", "a number within (0, 1]"),
    (WINDOW, "--sample-fraction", "0", "a number within (0, 1]"),
    (WINDOW, "--category", "../etc", "a name of letters"),
    (WINDOW, "--shard", "/etc/passwd", "a name of letters"),
    (WINDOW, "--model", " ", "an embedded model name"),
    (SCORE, "--model", "", "an embedded model name"),
    (SELECT, "--model", " ", "an embedded model name"),
    (SCORE, "--device", "gpu", "auto, cpu, cuda or cuda:N"),
    (SCORE, "--device", "cuda:99", "a visible CUDA device"),
    pytest.param(
        SCORE, "--device", "cuda", "a visible CUDA device (none is visible here)",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible"),
    ),
    (SCORE, "--dtype", "float8", "one of auto, float32, bfloat16, float16"),
    (SCORE, "--kernel", "cuda", "one of auto, torch, triton"),
    (SCORE, "--batch-tokens", "0", "an integer >= 1"),
    (SCORE, "--block-size", "-1", "an integer >= 1"),
    (SCORE, "--workers", "0", "an integer >= 1"),
    (SCORE, "--rope-theta", "0", "a finite number > 0"),
    (SCORE, "--rope-theta", "nan", "a finite number > 0"),
    (SCORE, "--rope-scaling", "[4]", "a JSON object"),
    (SCORE, "--rope-scaling", "{linear", "a JSON object"),
    (SCORE, "--rope-scaling", '{"rope_type": "linear", "factor": 0}', "finite numbers > 0"),
    (SCORE, "--layer", "-1", "an integer >= 0"),
    (["browse"], "--keep-fraction", "1.5", "a number within [0, 1]"),
    (["browse"], "--alpha", "nan", "a finite number"),
    (["browse"], "--threshold", "inf", "a finite number"),
    (["browse"], "--token-budget", "-5", "an integer >= 0"),
    (["browse"], "--normalize", "softmax", "one of zscore, minmax"),
    (["browse"], "--category", "../etc", "a name of letters"),
    (EXPORT, "--formats", "mds,parquet", "a comma-separated subset of mds, megatron, hf"),
    (EXPORT, "--formats", ",", "a comma-separated subset of mds, megatron, hf"),
    (EXPORT, "--memory-budget", "lots", "a size such as 1GB"),
    (EXPORT, "--token-budgets", "book=-1", "category=tokens pairs"),
    (EXPORT, "--token-budgets", "book", "category=tokens pairs"),
    (EXPORT, "--weights", "book=0", "category=weight pairs"),
    (EXPORT, "--weights", "../etc=1", "category=weight pairs"),
    (EXPORT, "--total-tokens", "0", "an integer >= 1"),
    (EXPORT, "--seed", "-1", "an integer >= 0"),
    (EXPORT, "--model", " ", "an embedded model name"),
    (["browse"], "--category", "boook", "a known category: arxiv, book, code"),
    (["browse"], "--heads", "-1", "comma-separated distinct query head indices"),
    (["browse"], "--heads", "0,0", "comma-separated distinct query head indices"),
    (["browse"], "--port", "99999", "an integer from 0 to 65535"),
    (["browse"], "--port", "-1", "an integer from 0 to 65535"),
    (["demo"], "--window-size", "0", "an integer >= 1"),
    (["demo"], "--device", "tpu", "auto, cpu, cuda or cuda:N"),
    (["demo"], "--categories", "code,,code", "a comma-separated list of distinct names"),
    (["demo"], "--categories", "poetry", "configured categories: "),
]

# (variable, bad value, text of what is allowed, the function that reads it)
BAD_VARIABLES = [
    ("LONGATTN_NUM_SHARDS", "0", "an integer from 1 to 10000", settings.num_shards),
    ("LONGATTN_NUM_SHARDS", "-2", "an integer from 1 to 10000", settings.num_shards),
    ("LONGATTN_NUM_SHARDS", "100000000", "an integer from 1 to 10000", settings.num_shards),
    ("LONGATTN_CATEGORIES", "", "a comma-separated list of distinct names", settings.categories),
    ("LONGATTN_WINDOW_SIZE", " ", "an integer >= 1", settings.window_size),
    ("LONGATTN_WINDOW_SIZE", "abc", "an integer >= 1", settings.window_size),
    ("LONGATTN_WINDOW_SIZE_DEFAULT", "1e3", "an integer >= 1", settings.window_size),
    ("LONGATTN_CATEGORIES", "code,../escape", "a comma-separated list of distinct names", settings.categories),
    ("LONGATTN_CATEGORIES", "code,code", "a comma-separated list of distinct names", settings.categories),
    ("LONGATTN_DEVICE", "cuda0", "auto, cpu, cuda or cuda:N", settings.device),
    ("LONGATTN_LAYER", "first", "an integer >= 0", settings.layer),
    ("LONGATTN_INGEST_MEMORY", "lots", "a size such as 1GB", settings.ingest_memory),
    ("LONGATTN_INGEST_WORKERS", "0", "an integer >= 1", settings.ingest_workers),
    ("LONGATTN_SCORING_WORKERS", "two", "an integer >= 1", settings.scoring_workers),
    ("LONGATTN_SLURM", "maybe", "1, true, yes, 0, false or no", slurm_enabled),
    ("LONGATTN_SLURM_REQUEUE", "2", "1, true, yes, 0, false or no", lambda: SlurmSettings.from_env("/x")),
    ("LONGATTN_SLURM_GPUS_PER_TASK", "-1", "an integer >= 0", lambda: SlurmSettings.from_env("/x")),
    ("LONGATTN_SLURM_CPUS_PER_TASK", "0", "an integer >= 1", lambda: SlurmSettings.from_env("/x")),
    ("LONGATTN_SLURM_MAX_PARALLEL", "x", "an integer >= 0", lambda: SlurmSettings.from_env("/x")),
]
# Read once at import by modules whose value is a constant; checked by importing them.
BAD_IMPORT_VARIABLES = [
    ("LONGATTN_DUCKDB_MEMORY", "lots", "a size such as 2GB", "longattn_assets.selection.duck"),
    ("LONGATTN_SCHEDULE_CRON", "every day", "a cron expression", "longattn_assets.schedules"),
    ("LONGATTN_NUM_SHARDS", "0", "an integer from 1 to 10000", "longattn_assets.definitions"),
    ("LONGATTN_NUM_SHARDS", "100000000", "an integer from 1 to 10000", "longattn_assets.definitions"),
    ("LONGATTN_CATEGORIES", "", "a comma-separated list of distinct names", "longattn_assets.definitions"),
]
# Free text: any non-empty value is a valid path, name or option string.
FREE_VARIABLES = {
    "LONGATTN_DATA_ROOT", "LONGATTN_INPUT_DIR", "LONGATTN_TEXT_COLUMN", "LONGATTN_CACHE_DIR", "LONGATTN_MODEL",
    "LONGATTN_SLURM_SHARED_DIR", "LONGATTN_SLURM_PARTITION", "LONGATTN_SLURM_MEM",
    "LONGATTN_SLURM_TIME", "LONGATTN_SLURM_EXTRA_ARGS", "LONGATTN_SLURM_PYTHON",
}


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    windows = tmp_path / "w.parquet"
    windows.write_bytes(b"PAR1" + b"\0" * 16 + b"PAR1")  # passes the Parquet check; never read
    return {"WINDOWS": str(windows), "INPUT": str(write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}]))}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("command,option,value,allowed", BAD_OPTIONS, ids=lambda v: str(v)[:20])
def test_bad_option_is_one_line_and_exit_2(command, option, value, allowed, inputs, capsys):
    argv = [inputs.get(word, word) for word in command] + [option, value]
    assert main(argv) == 2
    err = _one_line(capsys)
    assert err.startswith(f"longattn: error: {option}: got {value!r}, expected ") and allowed in err


def test_every_checked_option_has_a_bad_value_in_the_table():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    checked = {
        (name, action.option_strings[0])
        for name, sub in commands.items()
        for action in sub._actions
        if action.dest in RULES and action.option_strings
    }
    rows = [row.values if hasattr(row, "values") else row for row in BAD_OPTIONS]  # pytest.param
    tested = {(command[0], option) for command, option, _, _ in rows}
    assert checked <= tested, checked - tested


@pytest.mark.parametrize("variable,value,allowed,read", BAD_VARIABLES, ids=lambda v: str(v)[:28])
def test_bad_variable_names_itself(variable, value, allowed, read, monkeypatch):
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidSetting) as caught:
        read()
    assert str(caught.value) == f"{variable}: got {value!r}, expected {caught.value.allowed}"
    assert allowed in caught.value.allowed


@pytest.mark.parametrize("variable,value,allowed,module", BAD_IMPORT_VARIABLES)
def test_bad_variable_read_at_import_fails_the_import_with_its_line(variable, value, allowed, module):
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=REPO, env={**os.environ, variable: value}, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0
    assert last.startswith(f"longattn_assets.validation.InvalidSetting: {variable}: got {value!r}") and allowed in last


def test_every_variable_the_package_reads_is_checked_or_free_text():
    import re

    read = set()
    for path in (REPO / "longattn_assets").rglob("*.py"):
        read |= set(re.findall(r'"(LONGATTN_[A-Z_]+[A-Z])"', path.read_text()))
    tested = {v for v, *_ in BAD_VARIABLES} | {v for v, *_ in BAD_IMPORT_VARIABLES}
    assert read <= tested | FREE_VARIABLES, read - tested - FREE_VARIABLES


def test_help_works_whatever_the_environment_holds():
    env = {**os.environ, "LONGATTN_WINDOW_SIZE": "abc", "LONGATTN_DEVICE": "gpu"}
    for args in (["--help"], ["window", "--help"], ["score", "--help"]):
        done = subprocess.run(
            [sys.executable, "-m", "longattn_assets.cli", *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0 and "usage: longattn" in done.stdout, done.stderr


def test_a_bad_variable_used_by_a_command_is_one_line_and_exit_2(inputs, capsys, monkeypatch):
    monkeypatch.setenv("LONGATTN_WINDOW_SIZE", "abc")
    assert main([inputs.get(w, w) for w in WINDOW]) == 2
    assert _one_line(capsys) == "longattn: error: LONGATTN_WINDOW_SIZE: got 'abc', expected an integer >= 1"


def test_missing_and_wrong_input_files_are_one_line_and_exit_2(tmp_path: Path, capsys):
    assert main(["window", "/nonexistent.jsonl", "--category", "c", "--output", str(tmp_path / "w.parquet")]) == 2
    assert _one_line(capsys) == (
        "longattn: error: inputs: got '/nonexistent.jsonl', expected an existing file (no such file)"
    )
    assert not (tmp_path / "w.parquet").exists()
    assert main(["score", "/nonexistent.parquet", "--output", str(tmp_path / "s.parquet")]) == 2
    assert _one_line(capsys) == (
        "longattn: error: windows: got '/nonexistent.parquet', expected an existing file (no such file)"
    )
    text = write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    assert main(["score", str(text), "--output", str(tmp_path / "s.parquet")]) == 2
    assert "expected a Parquet file (it does not start with PAR1)" in _one_line(capsys)
    assert main(["window", str(tmp_path), "--category", "c", "--output", str(tmp_path / "w.parquet")]) == 2
    assert _one_line(capsys) == (
        f"longattn: error: inputs: got '{tmp_path}', expected a file, not a folder (give its files, e.g. {tmp_path}/*.jsonl)"
    )


def test_checked_values_keep_their_meaning():
    assert check("window_size", "256") == 256 and check("window_size", 3.0) == 3
    assert check("keep_fraction", "0.29") == 0.29 and check("keep_fraction", 1) == 1.0
    assert check("categories", "arxiv, book,") == ["arxiv", "book"]
    assert check("device", "cuda:1") == "cuda:1" and check("flag", "Yes") is True
    assert check("rope_theta", None) is None
    for rule, value in (("window_size", True), ("alpha", "1e999"), ("token_budget", 2.5)):
        with pytest.raises(InvalidSetting):
            check(rule, value)


# Dagster: the resources' and configs' fields are checked when they are built, so a bad
# value from the launchpad, run config or environment fails before any step does work.
@pytest.mark.parametrize(
    "resource,config,line",
    [
        ("windowing", {"window_size": 0}, "windowing.window_size: got 0, expected an integer >= 1"),
        ("windowing", {"sample_fraction": 1.5}, "windowing.sample_fraction: got 1.5"),
        ("attention_scorer", {"batch_tokens": -1}, "attention_scorer.batch_tokens: got -1"),
        ("attention_scorer", {"device": "gpu0"}, "attention_scorer.device: got 'gpu0'"),
        ("attention_scorer", {"rope_theta": float("nan")}, "attention_scorer.rope_theta: got nan"),
        ("attention_scorer", {"workers": 0}, "attention_scorer.workers: got 0, expected an integer >= 1"),
    ],
)
def test_bad_resource_config_fails_the_run_before_any_step(resource, config, line, tmp_path: Path):
    from longattn_assets.assets.windows import windowed_chunks
    from longattn_assets.definitions import default_resources
    from longattn_assets.resources import DataRoot

    resources = default_resources() | {
        "data_root": DataRoot(root=str(tmp_path)),
        resource: type(default_resources()[resource]).configure_at_launch(),
    }
    result = dg.materialize(
        [windowed_chunks],
        partition_key="code|00000",
        resources=resources,
        run_config={"resources": {resource: {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure).event_specific_data.error.to_string()
    assert line in failure
    assert "materialize raw_corpus" not in failure  # failed building resources, before the body ran
    assert not any(e.is_step_start for e in result.all_events)


@pytest.mark.parametrize(
    "config,line",
    [
        ({"keep_fraction": 1.5}, "keep_fraction: got 1.5, expected a number within [0, 1]"),
        ({"alpha": float("inf")}, "alpha: got inf, expected a finite number"),
        ({"token_budget": -5}, "token_budget: got -5, expected an integer >= 0"),
    ],
)
def test_bad_selection_config_is_refused_when_built(config, line):
    from longattn_assets.assets.selection import SelectionConfig

    with pytest.raises(Exception) as caught:
        SelectionConfig(**config)
    assert line in str(caught.value)


@pytest.mark.parametrize(
    "config,line",
    [
        ({"formats": ["mds", "parquet"]}, "formats: got ['mds', 'parquet'], expected a comma-separated subset of mds, megatron, hf"),
        ({"memory_budget": "lots"}, "memory_budget: got 'lots', expected a size such as 1GB"),
        ({"tokenizer": " "}, "tokenizer: got ' ', expected an embedded model name"),
        ({"weights": {"book": 0.0}}, "weights: got {'book': 0.0}, expected category=weight pairs"),
        ({"token_budgets": {"book": 5}, "weights": {"book": 1.0}}, "give token budgets or weights, not both"),
        ({"seed": -1}, "seed: got -1, expected an integer >= 0"),
    ],
)
def test_bad_training_config_is_refused_when_built(config, line):
    from longattn_assets.assets.training import MixtureConfig

    with pytest.raises(Exception) as caught:
        MixtureConfig(**config)
    assert line in str(caught.value)


def test_demo_with_a_missing_category_folder_is_one_line_before_any_run(tmp_path: Path, capsys):
    (tmp_path / "input" / "book").mkdir(parents=True)
    argv = ["demo", "--data-root", str(tmp_path / "root"), "--input-dir", str(tmp_path / "input"), "--categories", "code"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"longattn: error: no input folder for category 'code': expected {tmp_path / 'input' / 'code'} "
        "(folders found under " + str(tmp_path / "input") + ": ['book'])"
    )
    said = captured.out + captured.err
    assert "Traceback" not in said and "dagster._" not in said and "DagsterError" not in said
    assert not (tmp_path / "root" / ".dagster").exists()


@pytest.mark.parametrize(
    "job,config,path",
    [
        ("shard_job", {"resources": {"attention_scorer": {"config": {"kernel": "fast"}}}}, "kernel"),
        ("shard_job", {"resources": {"attention_scorer": {"config": {"dtype": "float8"}}}}, "dtype"),
        ("selection_job", {"ops": {"longabc_dataset": {"config": {"normalize": "rank"}}}}, "normalize"),
    ],
)
def test_the_launchpad_refuses_a_value_outside_a_fixed_set_before_launching(job, config, path):
    from longattn_assets.definitions import defs

    with pytest.raises(dg.DagsterInvalidConfigError, match=f"{path} not in enum type"):
        dg.validate_run_config(defs.resolve_job_def(job), config)


@pytest.mark.parametrize(
    "config,line",
    [
        ({"cpus_per_task": 0}, "slurm_scoring.cpus_per_task: got 0, expected an integer >= 1"),
        ({"gpus_per_task": -1}, "slurm_scoring.gpus_per_task: got -1, expected an integer >= 0"),
        ({"poll_s": 0.0}, "slurm_scoring.poll_s: got 0.0, expected a finite number > 0"),
    ],
)
def test_bad_slurm_config_is_refused_when_built(config, line):
    from longattn_assets.slurm.resource import SlurmScoring

    with pytest.raises(Exception) as caught:
        SlurmScoring(**config)
    assert line in str(caught.value)


# Checks that need the files or the model an option refers to (issues 23 and 26).


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> dict[str, Path]:
    """Real windows and scores of three short documents (64-token windows), made by the CLI."""
    from tests.corpus_fixtures import stdlib_sources

    folder = tmp_path_factory.mktemp("scored")
    rows = [{"id": name, "text": text[:1500]} for name, text in stdlib_sources(3, min_chars=2000)]
    windows, scores = folder / "w.parquet", folder / "s.parquet"
    source = str(write_jsonl(folder / "in.jsonl", rows))
    assert main(["window", source, "--category", "code", "--output", str(windows), "--window-size", "64"]) == 0
    assert main(["score", str(windows), "--output", str(scores), "--device", "cpu"]) == 0
    return {"windows": windows, "scores": scores}


@pytest.mark.parametrize("command", ["select", "browse"])
def test_heads_the_scores_do_not_have_are_one_line_and_exit_2(command, scored, tmp_path: Path, capsys):
    capsys.readouterr()
    out = tmp_path / "out"
    argv = [command, "--windows", str(scored["windows"]), "--scores", str(scored["scores"]), "--heads", "0,9"]
    assert main(argv + (["--output", str(out)] if command == "select" else [])) == 2
    assert _one_line(capsys) == (
        "longattn: error: --heads: got '0,9', expected head indices from 0 to 8: the scores have 9 heads"
    )
    assert not out.exists()


def test_browse_usage_errors_and_unknown_categories_are_one_line_and_exit_2(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env here: the default categories arxiv, book, code
    monkeypatch.delenv("LONGATTN_CATEGORIES", raising=False)
    (tmp_path / "longabc_dataset" / "category=poetry").mkdir(parents=True)  # a category of this root
    root = ["--data-root", str(tmp_path)]
    for argv, line in [
        (["browse", "--windows", "w.parquet"], "browse: give both --windows and --scores, or neither"),
        (["browse", "--scores", "s.parquet"], "browse: give both --windows and --scores, or neither"),
        (["browse"], "browse: give --category (or --windows and --scores)"),
        (["browse", "--category", "boook", *root],
         "--category: got 'boook', expected a known category: arxiv, book, code, poetry"),
        (["browse", "--category", "book", *root],
         f"browse: book has no dataset under {tmp_path} yet: materialize longabc_dataset first "
         "(longattn demo does), or give --windows and --scores"),
        (["browse", "--category", "poetry", *root], f"browse: poetry has no dataset under {tmp_path} yet"),
    ]:  # fmt: skip
        assert main(argv) == 2
        assert _one_line(capsys).startswith(f"longattn: error: {line}")


def test_an_existing_model_file_that_is_not_gguf_is_said_to_be_no_gguf_file(inputs, tmp_path: Path, capsys):
    model = tmp_path / "model.bin"
    model.write_text("weights, surely")
    assert main(["score", inputs["WINDOWS"], "--output", str(tmp_path / "s.parquet"), "--model", str(model)]) == 2
    assert _one_line(capsys) == (
        f"longattn: error: model: got '{model}', expected a GGUF file, a model folder with config.json, "
        "an embedded model name or a hub id in the local cache: this file is not GGUF (it does not start "
        "with the bytes GGUF)"
    )


def test_a_window_longer_than_the_model_was_trained_for_is_refused_before_any_work(
    inputs, tmp_path: Path, capsys, monkeypatch
):
    """DESIGN 1.2: SmolLM2 has 8192 positions, so windows of at most 8191 tokens plus BOS."""
    limit = "an integer from 1 to 8191: the model smollm2-135m was trained on 8192 positions, one of them for BOS"
    output = tmp_path / "windows.parquet"
    assert main([*WINDOW[:1], inputs["INPUT"], *WINDOW[2:4], "--output", str(output), "--window-size", "8192"]) == 2
    assert _one_line(capsys) == f"longattn: error: --window-size: got 8192, expected {limit}"
    monkeypatch.setenv("LONGATTN_WINDOW_SIZE", "32768")  # the paper's size, from the environment
    assert main([*WINDOW[:1], inputs["INPUT"], *WINDOW[2:4], "--output", str(output)]) == 2
    assert _one_line(capsys) == f"longattn: error: LONGATTN_WINDOW_SIZE: got 32768, expected {limit}"
    assert not output.exists()
    root = tmp_path / "root"
    assert main(["demo", "--data-root", str(root), "--window-size", "1000000", "--device", "cpu"]) == 2
    assert _one_line(capsys) == f"longattn: error: --window-size: got 1000000, expected {limit}"
    assert not root.exists()  # no instance, no run, no file


@pytest.mark.parametrize("window_size", [8192, 32768])
def test_a_window_longer_than_the_model_was_trained_for_fails_the_run_before_any_work(
    window_size, tmp_path: Path
):
    from longattn_assets.assets.windows import windowed_chunks
    from longattn_assets.definitions import default_resources
    from longattn_assets.resources import DataRoot, Windowing

    result = dg.materialize(
        [windowed_chunks],
        partition_key="code|00000",
        resources=default_resources() | {"data_root": DataRoot(root=str(tmp_path)), "windowing": Windowing(window_size=window_size)},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure).event_specific_data.error.to_string()
    assert f"windowing.window_size: got {window_size}, expected an integer from 1 to 8191" in failure
    assert "raw_corpus" not in failure  # refused before it looked for its input
    assert not (tmp_path / "windowed_chunks").exists()


def test_settings_that_give_no_window_say_so_and_exit_2(tmp_path: Path, capsys):
    short = str(write_jsonl(tmp_path / "short.jsonl", [{"text": "short text here"}, {"text": "another one"}]))
    output = tmp_path / "w.parquet"
    base = ["window", short, "--category", "code", "--output", str(output)]
    assert main([*base, "--window-size", "64"]) == 2
    line = _one_line(capsys)
    assert line.startswith("longattn: error: --window-size: got 64, expected at most ") and line.endswith(
        " for these inputs: none of their 2 documents has more than 64 tokens, which a window needs "
        f"(the longest has {int(line.split('at most ')[1].split()[0]) + 1})"
    )
    assert main([*base, "--window-size", "1", "--sample-fraction", "0.0001"]) == 2
    assert re.fullmatch(
        r"longattn: error: no windows: --sample-fraction sampled out all \d+ windows of 2 documents; raise it",
        _one_line(capsys),
    )
    assert not output.exists()  # nothing written that a later step would take for a result


@pytest.mark.slow
def test_a_demo_whose_window_size_gives_no_window_says_so_before_scoring_controls(tmp_path: Path):
    from longattn_assets.demo import run_demo
    from tests.ops.tiny import tiny_corpus

    said: list[str] = []
    with pytest.raises(InvalidSetting) as caught:  # the documents have 100 to 200 tokens
        run_demo(tmp_path / "root", window_size=4096, input_dir=tiny_corpus(tmp_path / "input"),
                 device="cpu", categories=["code"], say=said.append)  # fmt: skip
    assert re.fullmatch(
        r"--window-size: got 4096, expected at most \d+ for these inputs: none of their 24 documents "
        r"has more than 4096 tokens, which a window needs \(the longest has \d+\)",
        str(caught.value),
    )
    assert not (tmp_path / "root/scorer_diagnostics").exists()
    assert "  scorer diagnostics" not in "\n".join(said)
