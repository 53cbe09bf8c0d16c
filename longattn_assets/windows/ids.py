"""Stable ids: a document's key is a hash of its text, a window's id adds its place in it.

Ids depend only on the category, the document's text, the window size and the window's
start token, so they are the same whatever the shard count, worker count or run order.
"""

from __future__ import annotations

import hashlib

import numpy as np

DOC_HASH_BYTES = 8
TOKENS_HASH_BYTES = 8


def document_hash(text: str) -> str:
    """16 hex digits of BLAKE2b over the UTF-8 text: the document's identity."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=DOC_HASH_BYTES).hexdigest()


def tokens_hash(token_ids: np.ndarray) -> str:
    """16 hex digits of BLAKE2b over the token ids as little-endian int32: a window's content.

    Windows carry it and the scorer writes it beside the scores from the ids it scored, so a
    selection can check, window by window, that its scores are those of its windows.
    """
    data = np.ascontiguousarray(token_ids, dtype="<i4").tobytes()
    return hashlib.blake2b(data, digest_size=TOKENS_HASH_BYTES, person=b"longattn-tokens").hexdigest()


def window_id(category: str, doc_hash: str, window_size: int, token_start: int) -> str:
    return f"{category}-{doc_hash}-w{window_size}-{token_start:09d}"


def unit_interval(key: str) -> float:
    """A uniform number in [0, 1) from ``key``: order-independent sampling decisions."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"longattn-sample").digest()
    return int.from_bytes(digest, "big") / 2**64


def shard_of(doc_hash: str, num_shards: int) -> int:
    return int(doc_hash, 16) % num_shards
