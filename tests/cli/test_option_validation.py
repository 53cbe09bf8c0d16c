"""Every option and environment variable: a bad value is one line naming it, the value and what is allowed."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from longattn_assets import settings
from longattn_assets.cli import build_parser, main
from longattn_assets.slurm.settings import SlurmSettings, slurm_enabled
from longattn_assets.validation import RULES, InvalidSetting, check
from tests.corpus_fixtures import write_jsonl

REPO = Path(__file__).resolve().parents[2]
SELECT = ["select", "--windows", "w*.parquet", "--scores", "s*.parquet", "--output", "out"]
SCORE = ["score", "WINDOWS", "--output", "s.parquet"]
WINDOW = ["window", "INPUT", "--category", "code", "--output", "w.parquet"]

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
    (WINDOW, "--window-size", "0", "an integer >= 1"),
    (WINDOW, "--window-size", "-5", "an integer >= 1"),
    (WINDOW, "--window-size", "abc", "an integer >= 1"),
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
    (SCORE, "--device", "cuda:99", "a visible device"),
    (SCORE, "--dtype", "float8", "one of auto, float32, bfloat16, float16"),
    (SCORE, "--kernel", "cuda", "one of auto, torch, triton"),
    (SCORE, "--batch-tokens", "0", "an integer >= 1"),
    (SCORE, "--block-size", "-1", "an integer >= 1"),
    (SCORE, "--rope-theta", "0", "a finite number > 0"),
    (SCORE, "--rope-theta", "nan", "a finite number > 0"),
    (SCORE, "--rope-scaling", "[4]", "a JSON object"),
    (SCORE, "--rope-scaling", "{linear", "a JSON object"),
    (["browse"], "--keep-fraction", "1.5", "a number within [0, 1]"),
    (["browse"], "--alpha", "nan", "a finite number"),
    (["browse"], "--threshold", "inf", "a finite number"),
    (["browse"], "--token-budget", "-5", "an integer >= 0"),
    (["browse"], "--normalize", "softmax", "one of zscore, minmax"),
    (["browse"], "--category", "../etc", "a name of letters"),
    (["demo"], "--window-size", "0", "an integer >= 1"),
    (["demo"], "--device", "tpu", "auto, cpu, cuda or cuda:N"),
    (["demo"], "--categories", "code,,code", "a comma-separated list of distinct names"),
    (["demo"], "--categories", "poetry", "configured categories: "),
]

# (variable, bad value, text of what is allowed, the function that reads it)
BAD_VARIABLES = [
    ("LONGATTN_NUM_SHARDS", "0", "an integer >= 1", settings.num_shards),
    ("LONGATTN_NUM_SHARDS", "-2", "an integer >= 1", settings.num_shards),
    ("LONGATTN_WINDOW_SIZE", "abc", "an integer >= 1", settings.window_size),
    ("LONGATTN_WINDOW_SIZE_DEFAULT", "1e3", "an integer >= 1", settings.window_size),
    ("LONGATTN_CATEGORIES", "code,../escape", "a comma-separated list of distinct names", settings.categories),
    ("LONGATTN_CATEGORIES", "code,code", "a comma-separated list of distinct names", settings.categories),
    ("LONGATTN_DEVICE", "cuda0", "auto, cpu, cuda or cuda:N", settings.device),
    ("LONGATTN_INGEST_MEMORY", "lots", "a size such as 1GB", settings.ingest_memory),
    ("LONGATTN_INGEST_WORKERS", "0", "an integer >= 1", settings.ingest_workers),
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
    ("LONGATTN_NUM_SHARDS", "0", "an integer >= 1", "longattn_assets.definitions"),
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
    tested = {(command[0], option) for command, option, _, _ in BAD_OPTIONS}
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
