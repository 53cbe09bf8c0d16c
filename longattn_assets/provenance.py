"""What made a file: recorded inside every raw, windowed and scored Parquet file, read back by readers.

A :class:`Provenance` names the asset and partition a file belongs to, its *recipe* (the
code revision and every setting that changes the file's bytes: shard count, window size,
sample fraction, tokenizer and model fingerprints, scorer settings) and its *inputs* (the
fingerprints of what it was made from: the documents of a raw shard, the raw shard of a
windows file, the windows file of a scores file). Its fingerprint is a hash of all three,
so it changes whenever anything upstream of the file changes: a downstream file records
its input's fingerprint and is current exactly when that is still the input's fingerprint
and its recipe is the one the current settings would use.

The record lives in the Parquet footer (schema metadata under ``longattn.provenance``), so
it travels with the file, is written in the same atomic rename, costs one footer read to
check, and is invisible to DuckDB, Polars and ``datasets``. ``notes`` holds facts kept for
people and planners (e.g. the fingerprint of the input files a raw shard was read from)
that are not part of the identity.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"longattn.provenance"

# Bump an asset's revision when a code change alters the bytes it writes for the same
# inputs and settings: every file made by the older code then reads as stale.
CODE_REVISIONS = {"raw_corpus": "2", "windowed_chunks": "2", "scored_chunks": "2"}


def digest(value: object, length: int = 16) -> str:
    """A short sha256 of ``value``'s canonical JSON."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Provenance:
    asset: str
    category: str
    shard: str
    recipe: Mapping[str, Any]
    inputs: Mapping[str, str]
    notes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        identity = {"asset": self.asset, "category": self.category, "shard": self.shard,
                    "recipe": dict(self.recipe), "inputs": dict(self.inputs)}  # fmt: skip
        return f"{self.asset[:3]}-{digest(identity)}"

    def to_json(self) -> str:
        return json.dumps(
            {"asset": self.asset, "category": self.category, "shard": self.shard,
             "recipe": dict(self.recipe), "inputs": dict(self.inputs), "notes": dict(self.notes),
             "fingerprint": self.fingerprint},
            sort_keys=True, default=str,
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str | bytes) -> Provenance:
        data = json.loads(text)
        return cls(data["asset"], data["category"], data["shard"], data["recipe"],
                   data["inputs"], data.get("notes", {}))  # fmt: skip

    def stamp(self, schema: pa.Schema) -> pa.Schema:
        """``schema`` with this record in its metadata, ready for a Parquet writer."""
        return schema.with_metadata({**(schema.metadata or {}), METADATA_KEY: self.to_json().encode()})

    def stamped(self, table: pa.Table) -> pa.Table:
        return table.replace_schema_metadata(self.stamp(table.schema).metadata)


def read_provenance(path: str | os.PathLike[str]) -> Provenance | None:
    """The record of ``path``; None when the file is missing, unreadable or has none."""
    try:
        # the footer's key-value pairs: a stamped schema lands there, and so does a record
        # added to a streamed file just before it closes
        metadata = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    raw = metadata.get(METADATA_KEY)
    return Provenance.from_json(raw) if raw else None


def recipe_differences(found: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """``"window_size 256, now 512"`` for each setting that differs, in key order."""
    return [
        f"{key} {found.get(key, 'unset')}, now {expected.get(key, 'unset')}"
        for key in sorted(set(found) | set(expected))
        if found.get(key) != expected.get(key)
    ]


class DocumentsFingerprint:
    """Content hash of a raw shard: its documents' hashes and ids, in row order (the text is
    in the hashes). Fed table by table, so a shard written in pieces never needs to be whole."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, table: pa.Table) -> None:
        for pair in zip(table.column("doc_hash").to_pylist(), table.column("doc_id").to_pylist()):
            self._hash.update(json.dumps(pair).encode() + b"\n")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()[:16]


def documents_fingerprint(table: pa.Table) -> str:
    """:class:`DocumentsFingerprint` of one whole table."""
    fingerprint = DocumentsFingerprint()
    fingerprint.update(table)
    return fingerprint.hexdigest()
