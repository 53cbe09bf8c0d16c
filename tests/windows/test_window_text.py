"""A window's text is exactly the source characters its tokens cover; special-token strings are text."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from longattn_assets.cli import main
from longattn_assets.corpus.records import Document
from longattn_assets.windows.chunking import WindowSpec, WindowStats, window_batch, window_text
from longattn_assets.windows.files import document_batches
from tests.corpus_fixtures import write_jsonl
from tests.multiscript_text import (
    LITERALS,
    SPECIAL_STRINGS,
    byte_fallback_tokenizer,
    byte_level_tokenizer,
    local_cjk_texts,
    mixed_documents,
)


@pytest.fixture(scope="module", params=["smollm2", "byte_fallback", "byte_level_nfc"])
def family(request, tokenizer):
    """The bundled SmolLM2 tokenizer and two other families built here."""
    if request.param == "smollm2":
        return tokenizer
    if request.param == "byte_fallback":
        return byte_fallback_tokenizer()
    return byte_level_tokenizer(mixed_documents())


def _windows(docs: list[str], tok, window_size: int):
    records = [Document(text, f"d{i}", "test", i) for i, text in enumerate(docs)]
    batch = next(document_batches(records, []))
    return window_batch(batch, tok, WindowSpec("test", "00000", window_size), WindowStats()).to_pylist()


@pytest.mark.parametrize("window_size", [1, 5, 16, 37])
def test_window_text_is_a_substring_with_no_invented_character(family, window_size: int):
    docs = mixed_documents()
    rows = _windows(docs, family, window_size)
    by_id = {f"d{i}": text for i, text in enumerate(docs)}
    assert rows
    for row in rows:
        source = by_id[row["doc_id"]]
        assert row["content"] in source
        assert "\ufffd" not in row["content"]  # none of the sources holds U+FFFD


def test_adjacent_windows_tile_the_document(family):
    """Every character belongs to exactly one token: windows [kW, (k+1)W) join up to the text."""
    docs = mixed_documents()
    for text, encoding in zip(docs, family.encode_with_offsets(docs)):
        n = len(encoding.ids)
        for size in (1, 3, 8):
            pieces = [window_text(text, encoding, s, min(s + size, n)) for s in range(0, n, size)]
            assert "".join(pieces) == text


def test_a_character_split_between_windows_goes_to_the_window_holding_its_first_byte():
    tok = byte_fallback_tokenizer()  # every CJK character is three byte tokens here
    text = "a中b"
    encoding = tok.encode_with_offsets([text])[0]
    pieces = [tok.tokenizer.id_to_token(i) for i in encoding.ids]
    assert pieces == ["▁", "a", "<0xE4>", "<0xB8>", "<0xAD>", "b"]
    assert window_text(text, encoding, 0, 3) == "a中"  # ends on the character's first byte: kept whole
    assert window_text(text, encoding, 3, 6) == "b"  # starts inside it: starts at the next character
    assert window_text(text, encoding, 3, 5) == ""  # only continuation bytes: no character


@pytest.mark.parametrize("special", SPECIAL_STRINGS.split())
def test_special_token_strings_are_ordinary_text(family, special: str):
    text = f"chat log: {special} hello {special}"
    ids = family.encode_with_offsets([text])[0].ids
    specials = {i for i, t in family.tokenizer.get_added_tokens_decoder().items() if t.special}
    assert not specials & set(ids), [family.tokenizer.id_to_token(i) for i in ids]
    assert family.tokenizer.decode(ids, skip_special_tokens=False).strip() == text
    assert family.encode_batch([text])[0] == ids


def test_the_bundled_tokenizer_reads_im_start_as_text_not_bos(tokenizer):
    ids = tokenizer.encode_batch(["<|im_start|>"])[0]
    assert tokenizer.bos_token_id not in ids and len(ids) > 1


def test_cjk_corpus_windows_hold_no_character_outside_the_source(tmp_path: Path, capsys):
    """Must show: `longattn window` on CJK text exports no character that is not in the source."""
    texts = local_cjk_texts()
    rows = [{"id": f"cjk-{i}", "text": t} for i, t in enumerate(texts)]
    source = write_jsonl(tmp_path / "cjk.jsonl", rows)
    windows = tmp_path / "w.parquet"
    args = ["window", str(source), "--category", "cjk", "--output", str(windows), "--window-size", "256"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["windows"] > 0
    table = pq.read_table(windows, columns=["doc_id", "content"]).to_pylist()
    by_id = {r["id"]: r["text"] for r in rows}
    alphabet = set("".join(texts))
    assert len(table) >= 10
    for row in table:
        assert set(row["content"]) <= alphabet
        assert row["content"] in by_id[row["doc_id"]]


def test_emoji_and_combining_sequences_are_never_cut_into_invalid_text(tokenizer):
    text = (LITERALS["emoji"] + LITERALS["combining"]) * 30
    for size in (1, 2, 3, 7):
        for row in _windows([text], tokenizer, size):
            assert row["content"] in text
            row["content"].encode("utf-8")  # no lone surrogate: whole code points only
