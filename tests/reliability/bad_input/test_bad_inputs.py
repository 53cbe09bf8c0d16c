"""The committed bad-input corpus through the raw_corpus asset: counts match the manifest exactly.

tests/reliability/data/bad_inputs/code holds small files of every kind of damage;
expected.json (written by hand) says which rows must be kept and which rejected with
which reason. The 50 MB document is generated here rather than committed.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ..pipeline import materialize
from ..record import record

DATA = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
BIG_CHARS = 50 * 2**20


def _big_text() -> str:
    line = "def f(x):\n    return x * 2  # a long document made of one short line repeated\n"
    return (line * (BIG_CHARS // len(line) + 1))[:BIG_CHARS]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[Path, dict, object]:
    input_dir = tmp_path_factory.mktemp("input")
    shutil.copytree(DATA / "code", input_dir / "code")
    with open(input_dir / "code" / "big.jsonl", "w", encoding="utf-8") as f:
        f.write(json.dumps({"id": "big-50mb", "text": _big_text()}) + "\n")
    root = tmp_path_factory.mktemp("root")
    result = materialize("ingest", root, input_dir, window=256)
    return root, json.loads((DATA / "expected.json").read_text()), result


def _kept(root: Path) -> list[dict]:
    files = sorted((root / "raw_corpus" / "category=code").glob("shard=*.parquet"))
    return [row for f in files for row in pq.read_table(f, columns=["doc_id", "source", "location", "n_chars"]).to_pylist()]


def _rejects(root: Path) -> list[dict]:
    lines = (root / "rejects" / "category=code" / "raw_corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _files(expected: dict) -> dict[str, dict]:
    return expected["files"] | expected["generated"]


def test_every_good_row_is_kept_and_nothing_else(ingested):
    root, expected, _ = ingested
    kept = _kept(root)
    by_source: dict[str, list[str]] = {}
    for row in sorted(kept, key=lambda r: (r["source"], r["location"])):
        by_source.setdefault(row["source"], []).append(row["doc_id"])
    for name, spec in _files(expected).items():
        ids = by_source.pop(name, [])
        if "kept_ids" in spec:
            assert ids == spec["kept_ids"], name
        else:
            assert (len(ids), ids[0], ids[-1]) == (spec["kept_count"], spec["first_id"], spec["last_id"]), name
    assert by_source == {}, "rows kept from files the manifest does not expect"
    assert len(kept) == expected["totals"]["documents"]


def test_every_bad_row_is_rejected_with_its_reason(ingested):
    root, expected, _ = ingested
    rejects = _rejects(root)
    found = sorted((r["source"], r["location"], r["reason"]) for r in rejects)
    wanted = sorted((name, loc, prefix) for name, spec in _files(expected).items() for loc, prefix in spec["rejects"])
    assert [(s, loc) for s, loc, _ in found] == [(s, loc) for s, loc, _ in wanted]
    for (source, location, reason), (_, _, prefix) in zip(found, wanted):
        assert reason.startswith(prefix), f"{source}:{location}: {reason!r} does not start with {prefix!r}"
    assert len(rejects) == expected["totals"]["rejects"]


def test_asset_metadata_counts_match_the_manifest(ingested):
    root, expected, result = ingested
    meta = result.asset_materializations_for_node("raw_corpus")[0].metadata
    totals = expected["totals"]
    assert meta["documents"].value == totals["documents"]
    assert meta["rejects"].value == totals["rejects"]
    assert meta["duplicates"].value == totals["duplicates"]
    assert sum(meta["documents_per_shard"].value.values()) == totals["documents"]
    assert meta["files"].value == len(_files(expected))
    kept = _kept(root)
    record(
        "bad input",
        f"{len(_files(expected))} damaged files + 50 MB document",
        faults=totals["rejects"],
        survived=1,
        rows_checked=len(kept) + totals["rejects"],
        rows_lost=totals["documents"] - len(kept),
    )


def test_texts_are_kept_verbatim(ingested):
    root, _, _ = ingested
    files = sorted((root / "raw_corpus" / "category=code").glob("shard=*.parquet"))
    texts = {
        row["doc_id"]: row["text"]
        for f in files
        for row in pq.read_table(f, columns=["doc_id", "text"]).to_pylist()
        if row["doc_id"] != "big-50mb"
    }
    assert texts["et-good"] == "  Surrounding whitespace is kept as it is.  "
    assert texts["enc-good-1"] == "a proper pair \U0001f600 is an emoji"
    assert texts["mx-both"] == "content wins when both are present"
    assert texts["bom-good-1"] == "First row of a file saved with a UTF-8 BOM."
    assert texts["pickle-payload"] == "cos\nsystem\n(S'touch PWNED-pickle'\ntR."
    sizes = Counter(row["doc_id"] for f in files for row in pq.read_table(f, columns=["doc_id"]).to_pylist())
    assert sizes["dup-a"] == 2 and sizes["dup-b"] == 1


def test_the_50mb_document_is_kept_whole(ingested):
    root, _, _ = ingested
    (row,) = [r for r in _kept(root) if r["doc_id"] == "big-50mb"]
    assert row["n_chars"] == BIG_CHARS
