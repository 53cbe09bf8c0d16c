"""The Hugging Face datasets layout of longabc_dataset's ``hf/``, with the token ids.

The same layout (``data/train-0000i-of-0000N.parquet`` and a ``README.md`` card whose YAML
front matter tells ``load_dataset`` what is there) and the same columns, plus ``category``
and ``input_ids`` (list<int32>: the ids as windowed_chunks holds them). Files are cut at
about ``max_file_bytes`` of text and ids.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from ..provenance import Provenance
from ..selection.exports import DEFAULT_HF_FILE_BYTES

HF_SCHEMA = pa.schema(
    [
        ("content", pa.string()), ("data_id", pa.string()), ("category", pa.string()),
        ("ds", pa.float64()), ("du", pa.float64()), ("lds", pa.float64()),
        ("input_ids", pa.list_(pa.int32())),
    ]
)  # fmt: skip
_FEATURES = [
    {"name": "content", "dtype": "string"}, {"name": "data_id", "dtype": "string"},
    {"name": "category", "dtype": "string"}, {"name": "ds", "dtype": "float64"},
    {"name": "du", "dtype": "float64"}, {"name": "lds", "dtype": "float64"},
    {"name": "input_ids", "list": "int32"},
]  # fmt: skip


class HfOutput:
    """Write rows as ``data/train-*.parquet`` under ``folder``; the card comes at the end."""

    def __init__(self, folder: Path, provenance: Provenance, max_file_bytes: int = DEFAULT_HF_FILE_BYTES):
        self.data = folder / "data"
        self.data.mkdir(parents=True)
        self.schema = provenance.stamp(HF_SCHEMA)
        self.max_file_bytes = max_file_bytes
        self.parts: list[Path] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._size = 0

    def write(self, batch: pa.RecordBatch) -> None:
        table = pa.Table.from_batches([batch]).select(HF_SCHEMA.names).cast(self.schema)
        sizes = pc.add(
            pc.binary_length(table.column("content")),
            pc.multiply(pc.list_value_length(table.column("input_ids")), 4),
        ).to_numpy()
        start = 0
        for row, size in enumerate(sizes):
            if self._size and self._size + size > self.max_file_bytes:  # this row starts a new file
                self._write(table.slice(start, row - start))
                self._writer.close()
                self._writer, self._size, start = None, 0, row
            self._size += int(size)
        self._write(table.slice(start))

    def _write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.parts.append(self.data / f"part-{len(self.parts)}.parquet")
            self._writer = pq.ParquetWriter(self.parts[-1], self.schema, compression="zstd")
        if table.num_rows:
            self._writer.write_table(table)
            self.rows += table.num_rows

    def close(self) -> list[Path]:
        if self._writer is None:
            self._write(self.schema.empty_table())
        self._writer.close()
        finals = [self.data / f"train-{i:05d}-of-{len(self.parts):05d}.parquet" for i in range(len(self.parts))]
        for part, final in zip(self.parts, finals):
            os.replace(part, final)
        return finals


def training_card(
    title: str,
    facts: Mapping[str, object],
    categories: Mapping[str, Mapping[str, int]],
    files: Sequence[Path],
    rows: int,
) -> str:
    """The README.md of the hf/ folder: front matter for ``load_dataset`` and the Hub, then the facts."""
    front = {
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
        "dataset_info": {
            "features": _FEATURES,
            "splits": [{"name": "train", "num_bytes": sum(f.stat().st_size for f in files), "num_examples": rows}],
        },
        "tags": ["long-context", "longattn", "longabc", "pretokenized"],
    }
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {title}",
        "",
        "Windows with strong long-range dependencies, selected by LongAttn (arXiv 2502.16860), "
        "with `input_ids`: the token ids exactly as they were scored (no re-tokenization).",
        "",
        "Columns: `content` (window text), `data_id`, `category`, `ds`, `du`, `lds`, `input_ids`.",
        "",
        "## Export",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        "",
        "## Categories",
        "",
        "| category | windows | tokens |",
        "|---|---|---|",
        *(f"| {name} | {c['windows']:,} | {c['tokens']:,} |" for name, c in categories.items()),
        "",
    ]
    return "\n".join(lines)
