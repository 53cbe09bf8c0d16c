"""What a training export reads, and whether it may: a category's selection and its windows.

This module is the export's one use of the provenance mechanism (consistency.py and
provenance.py). A selection folder's ``selection.json`` names the windows and scores files
it was made from with their provenance fingerprints; an export reads a selection only
while those files are unchanged (``recorded_files``) and only with the tokenizer that made
its windows; in Dagster the asset first requires the category's current shard files
(``assets.selection.current_files``), so a selection of stale or replaced shards is refused.
Its fingerprint (a hash of the whole selection.json, which holds the settings, the
statistics and every input's fingerprint) goes into the export's own record, so an export
is current exactly when its selection, windows and tokenizer are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from ..consistency import InconsistentDataError, recorded_files
from ..provenance import digest, read_provenance
from ..selection.exports import JSONL_FILE, SELECTED_FILE, SUMMARY_FILE

if TYPE_CHECKING:
    from ..model.tokenizer import ModelTokenizer

HF_TEXT_DIR = "hf"


class OtherTokenizerError(ValueError):
    """An export asked for with another tokenizer than the one whose token ids were scored."""


@dataclass(frozen=True)
class WindowsFile:
    path: Path
    category: str
    shard: str


@dataclass(frozen=True)
class Selection:
    """One category's selection as an export reads it."""

    category: str
    folder: Path
    record: Mapping[str, Any]  # selection.json
    windows_files: tuple[WindowsFile, ...]
    tokenizer: str  # fingerprint of the tokenizer that made the windows' token ids
    bos_token_id: int | None  # what the scorer put before each window; None: nothing
    fingerprint: str

    @property
    def selected(self) -> Path:
        return self.folder / SELECTED_FILE

    @property
    def kept(self) -> int:
        return int(self.record["kept"])

    @property
    def window_size(self) -> int:
        return int(self.record["inputs"]["windows_recipe"]["window_size"])

    @property
    def tokens_kept(self) -> int:
        return int(self.record["tokens_kept"])


def dataset_root(folder: Path) -> Path | None:
    """The data root of a ``<root>/longabc_dataset/category=C`` folder (its records are
    relative to it); None for a folder ``longattn select`` wrote elsewhere."""
    folder = folder.absolute()
    if folder.name.startswith("category=") and folder.parent.name == "longabc_dataset":
        return folder.parent.parent
    return None


def read_selection(folder: str | Path, root: Path | None = None) -> Selection:
    """The selection in ``folder``, refused unless the files it was made from are unchanged."""
    folder = Path(folder)
    summary = folder / SUMMARY_FILE
    if not summary.is_file():
        raise InconsistentDataError(
            f"{folder} holds no selection ({SUMMARY_FILE}): run longattn select or materialize longabc_dataset first"
        )
    record = json.loads(summary.read_text())
    files = recorded_files(record["inputs"], root if root is not None else dataset_root(folder))
    rows = pq.read_metadata(folder / SELECTED_FILE).num_rows
    if rows != record["kept"]:
        raise InconsistentDataError(
            f"{folder / SELECTED_FILE} holds {rows} windows but {SUMMARY_FILE} says {record['kept']} were kept "
            "(a selection was interrupted): select again"
        )
    windows = []
    for path in files.windows:
        made = read_provenance(path)  # recorded_files has just checked it exists and is unchanged
        windows.append(WindowsFile(Path(path), made.category, made.shard))
    scorer = files.scores_recipe
    return Selection(
        category=str(record["category"]),
        folder=folder,
        record=record,
        windows_files=tuple(windows),
        tokenizer=str(files.windows_recipe["tokenizer"]),
        bos_token_id=scorer.get("bos_token_id") if scorer.get("add_bos") else None,
        fingerprint="sel-" + digest(record),
    )


def require_tokenizer(selections: list[Selection], tokenizer: str, asked: str | None = None) -> None:
    """Refuse an export with another tokenizer than the one the windows were scored as.

    ``asked`` names what the user asked for (a model), for the message."""
    for selection in selections:
        if selection.tokenizer == tokenizer:
            continue
        who = f"{asked}'s tokenizer ({tokenizer})" if asked else f"tokenizer {tokenizer}"
        raise OtherTokenizerError(
            f"{selection.category}: its windows were scored as token ids of tokenizer {selection.tokenizer} "
            f"(the scoring model's); {who} would give other ids, and the scores that chose these windows "
            "belong to the scored tokens, not to a re-tokenization. Export with the scoring model, or "
            f"tokenize the text outputs with yours: {selection.folder / JSONL_FILE} or {selection.folder / HF_TEXT_DIR}/"
        )
    firsts = {(s.tokenizer, s.bos_token_id) for s in selections}
    if len(firsts) > 1:
        raise InconsistentDataError(
            "the selections were scored with different tokenizers or BOS tokens, never mixed in one export: "
            + "; ".join(f"{s.category}: {s.tokenizer}, BOS {s.bos_token_id}" for s in selections)
        )


def vocabulary_size(tokenizer: ModelTokenizer) -> int:
    """How many ids the tokenizer can emit: its vocabulary with its added (special) tokens."""
    return tokenizer.tokenizer.get_vocab_size(with_added_tokens=True)
