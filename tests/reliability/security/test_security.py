"""Keys and paths stay under the data root, the UI binds to loopback, input is only ever text."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longattn_assets.storage import DataLayout, UnsafeKeyError

from ..pipeline import materialize
from ..record import record

PACKAGE = Path(__file__).resolve().parents[3] / "longattn_assets"
REPO = PACKAGE.parent
ESCAPES = ["..", "../x", "a/../../b", "/etc", "/tmp/x", "a/b", "", ".hidden", "x\x00y", "..\\x", "~", "a b"]
ASSETS = ["raw_corpus", "windowed_chunks", "scored_chunks", "longabc_dataset", "rejects"]


@pytest.mark.parametrize("key", ESCAPES)
def test_layout_refuses_keys_that_could_leave_the_root(key: str, tmp_path: Path):
    layout = DataLayout(tmp_path)
    for call in (
        lambda: layout.shard_path("raw_corpus", key, "00000"),
        lambda: layout.shard_path("raw_corpus", "code", key),
        lambda: layout.category_file("rejects", key, "raw_corpus.jsonl"),
        lambda: layout.category_file("rejects", "code", key),
        lambda: layout.category_dir(key, "code"),
    ):
        with pytest.raises(UnsafeKeyError):
            call()


@settings(max_examples=300, deadline=None)
@given(category=st.text(max_size=20), shard=st.text(max_size=20), asset=st.sampled_from(ASSETS))
def test_every_path_the_layout_accepts_lies_under_the_root(category: str, shard: str, asset: str):
    root = Path("/srv/longattn/data")
    layout = DataLayout(root)
    try:
        path = layout.shard_path(asset, category, shard)
    except UnsafeKeyError:
        return
    assert Path(os.path.normpath(path)).is_relative_to(root) and path.parent.parent.parent == root


@pytest.mark.parametrize("variable,value", [("LONGATTN_CATEGORIES", "code,../escape"), ("LONGATTN_CATEGORIES", "/etc")])
def test_a_configured_category_that_escapes_is_refused_at_load(variable: str, value: str):
    done = subprocess.run(
        [sys.executable, "-c", "import longattn_assets.definitions"],
        cwd=REPO, env={**os.environ, variable: value}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0 and f"InvalidSetting: {variable}: got {value!r}" in done.stderr


@pytest.mark.parametrize("option", [["--category", "../escape"], ["--category", "code", "--shard", "/etc/passwd"]])
def test_longattn_window_refuses_escaping_keys(option: list[str], tmp_path: Path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": "some text " * 50}) + "\n")
    out = tmp_path / "out.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "longattn_assets.cli", "window", str(source), "--output", str(out),
         "--window-size", "16", *option],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "expected a name of letters" in done.stderr and not out.exists()


def test_dagster_dev_and_the_webserver_default_to_loopback():
    from dagster._cli.dev import dev_command
    from dagster_webserver.cli import DEFAULT_WEBSERVER_HOST

    assert DEFAULT_WEBSERVER_HOST == "127.0.0.1"
    host = next(p for p in dev_command.params if p.name == "host")
    assert not isinstance(host.default, str)  # no --host is passed on: the webserver's default applies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_webserver_listens_on_loopback_only(tmp_path: Path):
    import psutil

    defs = tmp_path / "defs.py"
    defs.write_text("import dagster as dg\ndefs = dg.Definitions()\n")
    port = _free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    server = subprocess.Popen(
        [str(webserver), "-f", str(defs), "-p", str(port)],
        cwd=tmp_path, env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        listening: list[str] = []
        while not listening and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.5)
            listening = [
                c.laddr.ip for c in psutil.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            ]  # fmt: skip
        assert listening and set(listening) <= {"127.0.0.1", "::1"}, listening
    finally:
        server.kill()
        server.wait()


SOURCE_PATTERNS = {
    "eval(": re.compile(r"(?<![\w.])eval\("),
    "exec(": re.compile(r"(?<![\w.])exec\("),
    "pickle": re.compile(r"\b(c?pickle|marshal|dill|joblib)\b"),
    "torch.load": re.compile(r"torch\.load\("),
    "yaml.load": re.compile(r"yaml\.(unsafe_)?load\("),
    "trust_remote_code=True": re.compile(r"trust_remote_code\s*=\s*True"),
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "os.system": re.compile(r"os\.(system|popen)\("),
}


def test_the_package_never_evaluates_or_unpickles_anything():
    found = [
        f"{path.relative_to(PACKAGE)}:{number}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for name, pattern in SOURCE_PATTERNS.items()
        if pattern.search(line)
    ]
    assert found == []


def test_remote_code_in_a_model_folder_is_never_run(tmp_path: Path, monkeypatch):
    from longattn_assets.model.layer0 import load_layer0
    from longattn_assets.model.tokenizer import load_tokenizer

    marker = tmp_path / "REMOTE-CODE-RAN"
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "model_type": "evil", "architectures": ["EvilForCausalLM"],
        "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoTokenizer": ["evil.EvilTokenizer", None],
                     "AutoModelForCausalLM": "evil.EvilForCausalLM"},
    }))  # fmt: skip
    (model / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}}))
    (model / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.setenv("LONGATTN_CACHE_DIR", str(tmp_path / "cache"))
    for load in (load_tokenizer, load_layer0):
        with pytest.raises(Exception):  # noqa: B017 - whichever refusal, the point is the marker
            load(str(model))
    assert not marker.exists()


def test_code_looking_rows_are_only_ever_text(tmp_path: Path, monkeypatch):
    data = Path(__file__).resolve().parents[1] / "data" / "bad_inputs" / "code" / "payloads.jsonl"
    input_dir = tmp_path / "input"
    (input_dir / "code").mkdir(parents=True)
    (input_dir / "code" / "payloads.jsonl").write_bytes(data.read_bytes())
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    materialize("ingest", root, input_dir, window=8)
    rows = 0
    for shard in ("00000", "00001", "00002", "00003"):
        materialize("windows", root, input_dir, window=8, shard=shard)
        materialize("scores", root, input_dir, window=8, shard=shard)
        rows += pq.read_metadata(root / f"scored_chunks/category=code/shard={shard}.parquet").num_rows
    assert rows >= 4  # every payload was windowed and scored as text
    assert not [p for p in tmp_path.rglob("PWNED*")] and not list(REPO.glob("PWNED*"))
    record("security", "code/pickle/YAML payload rows run end to end", faults=4, survived=1, rows_checked=rows, rows_lost=0)
