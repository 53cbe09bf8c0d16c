"""windowed_chunks in, scored_chunks out: schema, order, tokenizer check, atomic file."""

import dataclasses
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from longattn_assets.consistency import NonFiniteScoresError
from longattn_assets.provenance import Provenance
from longattn_assets.scoring.scorer import Layer0Scorer
from longattn_assets.scoring.windows_file import (
    SCORED_SCHEMA,
    TokenizerMismatchError,
    score_windows_file,
    score_windows_table,
)
from longattn_assets.windows.ids import tokens_hash


def _windows_table(text_ids, tokenizer_fp, lengths=(200, 31, 450)):
    """Windows written by hand, with the provenance record every windows file carries."""
    starts = [0, 300, 1000]
    rows = [text_ids[s : s + n] for s, n in zip(starts, lengths, strict=True)]
    record = Provenance("windowed_chunks", "code", "00000", {"tokenizer": tokenizer_fp}, {"input_files": "by hand"})
    return record.stamped(pa.table(
        {
            "data_id": [f"doc{i}-w0" for i in range(len(rows))],
            "n_tokens": pa.array([len(r) for r in rows], pa.int32()),
            "token_ids": pa.array(rows, pa.list_(pa.int32())),
            "tokenizer": [tokenizer_fp] * len(rows),
            "text": ["..."] * len(rows),
        }
    ))


@pytest.fixture(scope="module")
def scorer(smollm2_weights, smollm2_tokenizer):
    return Layer0Scorer(smollm2_weights, device="cpu", bos_token_id=smollm2_tokenizer.bos_token_id)


def test_scored_table_has_the_contract_schema_and_row_order(scorer, smollm2_tokenizer, text_ids):
    windows = _windows_table(text_ids, smollm2_tokenizer.fingerprint)
    seen = []
    scored = score_windows_table(
        windows, scorer, smollm2_tokenizer.fingerprint, progress=lambda d, t: seen.append((d, t))
    )
    assert scored.schema == SCORED_SCHEMA
    assert scored.column_names == [
        "data_id",
        "n_tokens",
        "tokens_hash",
        "ds",
        "du",
        "ds_heads",
        "du_heads",
        "model",
    ]
    assert scored.column("data_id").to_pylist() == windows.column("data_id").to_pylist()
    assert scored.column("tokens_hash").to_pylist() == [
        tokens_hash(np.array(ids, np.int32)) for ids in windows.column("token_ids").to_pylist()
    ]
    assert set(scored.column("model").to_pylist()) == {scorer.fingerprint}
    direct = scorer.score(windows.column("token_ids").to_pylist())
    assert scored.column("ds").to_pylist() == [s.ds for s in direct]
    assert all(len(h) == 9 for h in scored.column("du_heads").to_pylist())
    assert seen[-1] == (3, 3)


def test_windows_from_another_tokenizer_are_refused(scorer, smollm2_tokenizer, text_ids):
    windows = _windows_table(text_ids, "tok-0000000000000000")
    with pytest.raises(TokenizerMismatchError) as info:
        score_windows_table(windows, scorer, smollm2_tokenizer.fingerprint)
    assert "tok-0000000000000000" in str(info.value) and smollm2_tokenizer.fingerprint in str(
        info.value
    )


def test_score_windows_file_writes_parquet_and_reports(tmp_path, smollm2_tokenizer, text_ids):
    source = tmp_path / "windowed.parquet"
    pq.write_table(_windows_table(text_ids, smollm2_tokenizer.fingerprint), source)
    out = tmp_path / "scored" / "category=code" / "shard=00000.parquet"
    stats = score_windows_file(source, out, model="smollm2-135m", device="cpu")
    scored = pq.read_table(out)
    assert scored.schema == SCORED_SCHEMA and scored.num_rows == 3
    assert stats["windows"] == 3 and stats["tokens"] == 200 + 31 + 450
    assert stats["device"] == "cpu" and stats["peak_memory_bytes"] > 0 and stats["tokens_per_s"] > 0
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left behind
    assert stats["model"] == scored.column("model")[0].as_py()


def test_score_windows_file_uses_a_given_scorer(tmp_path, scorer, smollm2_tokenizer, text_ids):
    source = tmp_path / "windowed.parquet"
    pq.write_table(_windows_table(text_ids, smollm2_tokenizer.fingerprint), source)
    seen = []
    stats = score_windows_file(
        source, tmp_path / "out.parquet", scorer=scorer, progress=lambda d, t: seen.append(d)
    )
    assert stats["model"] == scorer.fingerprint and seen[-1] == 3
    assert seen == sorted(set(seen)), "each count is reported once (one log line per count)"
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 3
    seen.clear()
    score_windows_file(
        source, tmp_path / "out2.parquet", scorer=scorer, chunk_windows=1,
        progress=lambda d, t: seen.append(d),
    )  # fmt: skip
    assert seen == [1, 2, 3]


def test_score_windows_file_refuses_mismatch_before_loading(tmp_path, text_ids, monkeypatch):
    import longattn_assets.model.layer0 as layer0

    monkeypatch.setattr(layer0, "load_layer0", lambda *a, **k: pytest.fail("weights were loaded"))
    source = tmp_path / "windowed.parquet"
    pq.write_table(_windows_table(text_ids, "tok-ffffffffffffffff"), source)
    with pytest.raises(TokenizerMismatchError):
        score_windows_file(source, tmp_path / "out.parquet", model="smollm2-135m", device="cpu")
    assert not (tmp_path / "out.parquet").exists()


def test_non_finite_scores_are_refused_naming_the_windows_and_nothing_is_written(
    tmp_path, smollm2_weights, smollm2_tokenizer, text_ids
):
    """A NaN in one token's embedding (as a broken checkpoint or bad rope settings give):
    the windows holding that token are named, and no scores file is written (issue 23, item 5)."""
    others = set(text_ids[0:200]) | set(text_ids[300:331])
    token = next(t for t in text_ids[1000:1450] if t not in others)  # in the third window only
    embed = smollm2_weights.embed_tokens.clone()
    embed[token] = math.nan
    broken = dataclasses.replace(smollm2_weights, embed_tokens=embed)
    scorer = Layer0Scorer(broken, device="cpu", bos_token_id=smollm2_tokenizer.bos_token_id)
    source = tmp_path / "windowed.parquet"
    pq.write_table(_windows_table(text_ids, smollm2_tokenizer.fingerprint), source)
    with pytest.raises(NonFiniteScoresError) as info:
        score_windows_file(source, tmp_path / "out.parquet", scorer=scorer)
    assert str(info.value).startswith(f"1 of 3 windows scored by {broken.fingerprint} have a NaN or infinite ds/du (doc2-w0)")
    assert not (tmp_path / "out.parquet").exists()
