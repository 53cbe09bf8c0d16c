"""The LongABC outputs of one category, each written atomically under one folder.

- ``selected.parquet``: the kept windows with text and scores, in rank order.
- ``longabc.jsonl``: LongAttn's export format, one ``{"content", "data_id"}`` per line.
- ``hf/``: a Hugging Face datasets folder, ``data/train-0000i-of-0000N.parquet`` plus a
  ``README.md`` dataset card whose YAML front matter tells ``load_dataset`` what is there.
- ``selection.json``: the settings and statistics of the selection, its ``inputs`` (the
  shards it read with each file's provenance fingerprint and the recipes that made them)
  and its ``calibration``: null, or where calibrated heads and alpha came from (the
  scorer_diagnostics record that chose them and their held-out AUC).

The exports stream ``selected.parquet`` batch by batch, so memory stays bounded whatever
the category's size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from longattn_assets.selection import duck
from longattn_assets.selection.rules import SelectionSettings
from longattn_assets.selection.select import SelectionSummary, write_selected_parquet
from longattn_assets.storage import atomic_path, temporary_sibling, write_text

SELECTED_FILE = "selected.parquet"
JSONL_FILE = "longabc.jsonl"
SUMMARY_FILE = "selection.json"
HF_DIR = "hf"
HF_COLUMNS = ("content", "data_id", "ds", "du", "lds")
DEFAULT_HF_FILE_BYTES = 256 * 2**20
_BATCH_ROWS = 1024


def export_category(
    windows_glob: duck.Source,
    scores_glob: duck.Source,
    out_dir: str | os.PathLike[str],
    *,
    category: str,
    settings: SelectionSettings | None = None,
    hf_file_bytes: int = DEFAULT_HF_FILE_BYTES,
    extra_settings: dict[str, object] | None = None,
    inputs: dict[str, object] | None = None,
    memory_limit: str = duck.DEFAULT_MEMORY_LIMIT,
    card_sections: Sequence[str] = (),
    calibration: dict[str, object] | None = None,
) -> SelectionSummary:
    """Select a category and write every output into ``out_dir``.

    ``inputs`` (``consistency.CategoryFiles.as_record()``) names the shards and the
    fingerprints of the files read; it goes into selection.json and the dataset card.
    ``card_sections``: markdown blocks the dataset card shows after its settings.
    ``calibration``: when heads and alpha are calibrated ones, where they came from
    (``diagnostics.calibration.calibrated_settings``); selection.json and the card record it.
    """
    settings = settings or SelectionSettings()
    out = Path(out_dir)
    # selection.json is the outputs' commit record: gone while they are rewritten, written
    # last, so a run killed in between leaves no record of files it did not finish
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    summary = write_selected_parquet(
        windows_glob, scores_glob, out / SELECTED_FILE, memory_limit=memory_limit,
        **settings.options(),
    )  # fmt: skip
    write_longabc_jsonl(out / SELECTED_FILE, out / JSONL_FILE)
    write_hf_dataset(
        out / SELECTED_FILE, out / HF_DIR, category=category, summary=summary,
        max_file_bytes=hf_file_bytes, extra_settings=extra_settings, inputs=inputs,
        card_sections=card_sections, calibration=calibration,
    )  # fmt: skip
    record = {"category": category, **summary.as_dict(), "settings_extra": extra_settings or {},
              "inputs": inputs or {}, "calibration": calibration}  # fmt: skip
    write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", out / SUMMARY_FILE)
    return summary


def write_longabc_jsonl(selected: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """One ``{"content": ..., "data_id": ...}`` per line, in rank order, UTF-8 unescaped."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        for batch in pq.ParquetFile(selected).iter_batches(
            batch_size=_BATCH_ROWS, columns=["content", "data_id"]
        ):
            for content, data_id in zip(*batch.to_pydict().values(), strict=True):
                line = json.dumps({"content": content, "data_id": data_id}, ensure_ascii=False)
                out.write(line + "\n")
    return Path(path)


def write_hf_dataset(
    selected: str | os.PathLike[str],
    hf_dir: str | os.PathLike[str],
    *,
    category: str,
    summary: SelectionSummary,
    max_file_bytes: int = DEFAULT_HF_FILE_BYTES,
    extra_settings: dict[str, object] | None = None,
    inputs: dict[str, object] | None = None,
    card_sections: Sequence[str] = (),
    calibration: dict[str, object] | None = None,
) -> list[Path]:
    """Split the kept windows into train-*.parquet files of at most ``max_file_bytes`` of text.

    A window whose text alone exceeds the limit gets a file of its own. The parts are
    written under temporary names and renamed once their count N is known; files of an
    earlier export that the new one does not overwrite are removed.
    """
    data_dir = Path(hf_dir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    source = pq.ParquetFile(selected)
    schema = source.schema_arrow
    schema = pa.schema([schema.field(name).with_nullable(True) for name in HF_COLUMNS])
    parts: list[Path] = []
    try:
        for batches in _bounded_parts(source, max_file_bytes):
            part = temporary_sibling(data_dir / "train.parquet")
            parts.append(part)
            with pq.ParquetWriter(part, schema, compression="zstd") as writer:
                for batch in batches:
                    writer.write_table(pa.Table.from_batches([batch]).cast(schema))
        if not parts:
            part = temporary_sibling(data_dir / "train.parquet")
            parts.append(part)
            pq.write_table(schema.empty_table(), part, compression="zstd")
        finals = [
            data_dir / f"train-{i:05d}-of-{len(parts):05d}.parquet" for i in range(len(parts))
        ]
        for part, final in zip(parts, finals, strict=True):
            os.replace(part, final)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    for stale in set(data_dir.glob("train-*.parquet")) - set(finals):
        stale.unlink()
    card = dataset_card(
        category, summary, schema, source.metadata.num_rows,
        num_bytes=sum(f.stat().st_size for f in finals), extra_settings=extra_settings, inputs=inputs,
        sections=card_sections, calibration=calibration,
    )  # fmt: skip
    write_text(card, Path(hf_dir) / "README.md")
    return finals


def _bounded_parts(source: pq.ParquetFile, max_bytes: int) -> Iterator[list[pa.RecordBatch]]:
    """Group the rows, in order, into runs whose text totals at most ``max_bytes``."""
    current: list[pa.RecordBatch] = []
    size = 0
    for batch in source.iter_batches(batch_size=_BATCH_ROWS, columns=list(HF_COLUMNS)):
        lengths = pc.binary_length(batch.column("content")).to_numpy(zero_copy_only=False)
        start = 0
        while start < len(batch):
            running = np.cumsum(lengths[start:])
            fits = int(np.searchsorted(running, max_bytes - size, side="right"))
            if fits == 0 and not current:
                fits = 1
            if fits == 0:
                yield current
                current, size = [], 0
                continue
            current.append(batch.slice(start, fits))
            size += int(running[fits - 1])
            start += fits
    if current:
        yield current


_HF_DTYPES = {pa.string(): "string", pa.float64(): "float64", pa.int64(): "int64"}


def dataset_card(
    category: str,
    summary: SelectionSummary,
    schema: pa.Schema,
    num_examples: int,
    *,
    num_bytes: int,
    extra_settings: dict[str, object] | None = None,
    inputs: dict[str, object] | None = None,
    sections: Sequence[str] = (),
    calibration: dict[str, object] | None = None,
) -> str:
    """A README.md with the YAML front matter the Hub and ``load_dataset`` read."""
    front = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": "data/train-*.parquet"}],
            }
        ],
        "dataset_info": {
            "features": [{"name": f.name, "dtype": _HF_DTYPES[f.type]} for f in schema],
            "splits": [{"name": "train", "num_bytes": num_bytes, "num_examples": num_examples}],
        },
        "tags": ["long-context", "longattn", "longabc"],
    }
    facts = summary.as_dict()
    settings = {**facts.pop("settings"), **(extra_settings or {}), "calibrated": _calibration_text(calibration)}
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# LongABC: {category}",
        "",
        "Windows with strong long-range dependencies, selected by LongAttn "
        "(arXiv 2502.16860): LDS = N(ds) - alpha * N(du) over layer-0 attention, "
        "normalized over the whole category, highest LDS kept.",
        "",
        "Columns: `content` (window text), `data_id`, `ds` (dependency strength), "
        "`du` (dependency uniformity, a variance), `lds`.",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in settings.items()),
        "",
        *sections,
        "## Statistics",
        "",
        "| statistic | value |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items() if not isinstance(value, dict)),
        *(
            f"| {score} {stat} | {value} |"
            for score in ("ds", "du")
            for stat, value in facts[score].items()
        ),
        "",
        *_inputs_section(inputs),
    ]
    return "\n".join(lines)


def _calibration_text(calibration: dict | None) -> str:
    """The card's "calibrated" setting: no, or which heads and alpha were chosen, where, and how they fared."""
    if calibration is None:
        return "no (heads and alpha as given)"

    def auc(found: dict | None) -> str:
        return "n/a" if found is None else f"{found['auc']:.2f} [{found['low']:.2f}, {found['high']:.2f}]"

    return (
        f"yes: heads {calibration['heads'] or 'all'} and alpha {calibration['alpha']:g} chosen by "
        f"scorer_diagnostics ({calibration['diagnostics']}) on {calibration['tuning_documents']} tuning "
        f"documents; held-out LDS AUC against concatenated controls on {calibration['evaluation_documents']} "
        f"other documents: {auc(calibration['held_out_auc_concatenated'])} "
        f"(with the diagnosed settings as given: {auc(calibration['given_held_out_auc_concatenated'])})"
    )


def _inputs_section(inputs: dict | None) -> list[str]:
    """The shards read, with the fingerprints of their windows and scores files and their recipes."""
    if not inputs:
        return []
    recipes = [
        f"| {kind} {key} | {value} |"
        for kind in ("windows", "scores")
        for key, value in sorted(inputs.get(f"{kind}_recipe", {}).items())
    ]
    return [
        "## Inputs",
        "",
        "| shard | windows | scores | windows scored |",
        "|---|---|---|---|",
        *(f"| {s['shard']} | {s['windows']} | {s['scores']} | {s['rows']} |" for s in inputs["shards"]),
        "",
        "| made with | value |",
        "|---|---|",
        *recipes,
        "",
    ]
