"""Windowing throughput beside bare `tokenizers` batch encoding of the same text, in one run.

    python benchmarks/windowing_bench.py [--window-size 2048] [--repeat 3]

Reads every document of the bundled sample corpus, then times (best of --repeat):
  bare      Tokenizer.encode_batch_fast(texts) alone: the floor any windowing pays
  windows   the project's windowing of the same documents: tokenize, Algorithm 1,
            ids, exact window text by token offsets, Arrow table (windows/chunking.py)
  +parquet  the same, written as a zstd Parquet file (windows/files.py)
and prints a table of document tokens per second and the ratio to bare encoding.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from longattn_assets.corpus.ingest import input_files
from longattn_assets.corpus.records import Document, read_file
from longattn_assets.model.tokenizer import load_tokenizer
from longattn_assets.settings import DEFAULT_CATEGORIES, SAMPLE_CORPUS_DIR
from longattn_assets.windows.chunking import WindowSpec, WindowStats, window_batch
from longattn_assets.windows.files import DOCS_PER_BATCH, files_provenance, write_windows
from longattn_assets.windows.ids import document_hash


def sample_documents() -> list[str]:
    texts = []
    for category in DEFAULT_CATEGORIES:
        for path in input_files(SAMPLE_CORPUS_DIR, category):
            texts += [d.text for d in read_file(path) if isinstance(d, Document)]
    return texts


def batches(texts: list[str]) -> list[pa.Table]:
    out = []
    for i in range(0, len(texts), DOCS_PER_BATCH):
        chunk = texts[i : i + DOCS_PER_BATCH]
        hashes = [document_hash(t) for t in chunk]
        out.append(pa.table({"doc_hash": hashes, "doc_id": hashes, "text": chunk}))
    return out


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window-size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    tokenizer = load_tokenizer()
    texts = sample_documents()
    tables = batches(texts)
    spec = WindowSpec("bench", "00000", args.window_size)
    n_tokens = sum(len(ids) for ids in tokenizer.encode_batch(texts))

    def bare() -> None:
        for table in tables:
            tokenizer.tokenizer.encode_batch_fast(table.column("text").to_pylist(), add_special_tokens=False)

    def windows() -> None:
        stats = WindowStats()
        for table in tables:
            window_batch(table, tokenizer, spec, stats)

    with tempfile.TemporaryDirectory() as tmp:
        def parquet() -> None:
            record = files_provenance(spec, tokenizer, "benchmark")
            write_windows(tables, tokenizer, spec, Path(tmp) / "w.parquet", provenance=record)

        rows = [("bare tokenizers encode_batch_fast", best(bare, args.repeat))]
        rows.append(("windowing (Arrow table)", best(windows, args.repeat)))
        rows.append(("windowing + Parquet write", best(parquet, args.repeat)))

    print(f"{len(texts)} documents, {n_tokens:,} tokens, window {args.window_size}\n")
    print("| path | seconds | tokens/s | time vs bare |")
    print("|---|---:|---:|---:|")
    floor = rows[0][1]
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {n_tokens / seconds:,.0f} | {seconds / floor:.2f}x |")


if __name__ == "__main__":
    main()
