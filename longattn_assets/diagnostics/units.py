"""Where a window's text may be cut for a control: units that begin after a blank line.

Controls are made of token ids the windows already hold (nothing is re-tokenized), so
boundaries are found in token space, from the text each token id decodes to:

- a *unit* starts at the token holding the first character after a blank line: a
  paragraph in prose and LaTeX; in code a definition, or a block of statements inside
  one (top-level blocks alone are too long in class-heavy modules: most 2,048-token
  windows of the sample's ``_pydecimal.py`` hold none);
- a *piece* is a run of whole consecutive units of one window: it begins where a unit
  begins and ends where a later one begins, so joining pieces joins texts at boundaries a
  writer made, never mid-line;
- lines and sentences are the fallback segments for shuffling a window with few units.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer

# A blank line, then any indentation: the unit starts at the next visible character.
BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*(?=\S)")
MIN_SEGMENTS = 4  # fewer units than this: shuffle lines, then sentences, then fixed spans


class Vocabulary:
    """Each token id's decoded text, with the ids that end a line or a sentence."""

    def __init__(self, texts: Sequence[str]):
        self.texts = tuple(texts)
        self.lengths = np.fromiter((len(t) for t in self.texts), np.int64, len(self.texts))
        self.line_ends = np.fromiter((i for i, t in enumerate(self.texts) if "\n" in t), np.int64)
        self.sentence_ends = np.fromiter(
            (i for i, t in enumerate(self.texts) if t.rstrip().endswith((".", "!", "?"))), np.int64
        )


def tokenizer_vocabulary(tokenizer: Tokenizer) -> Vocabulary:
    """The whole vocabulary of a tokenizer, each id decoded alone (0.2 s for 49 K ids)."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    return Vocabulary(tokenizer.decode_batch([[i] for i in range(size)], skip_special_tokens=False))


def unit_starts(ids: np.ndarray, vocabulary: Vocabulary) -> np.ndarray:
    """Positions (> 0) of the tokens that start a unit, ascending."""
    text = "".join(vocabulary.texts[i] for i in ids)
    ends = np.cumsum(vocabulary.lengths[ids])
    found = [m.end() for m in BLANK_LINE.finditer(text)]
    # the token whose characters hold position p is the first one ending after p
    tokens = np.unique(np.searchsorted(ends, np.asarray(found, np.int64), side="right"))
    return tokens[(tokens > 0) & (tokens < len(ids))]


def pieces(starts: np.ndarray, target: int) -> np.ndarray:
    """[k, 2] token ranges of whole units, from each unit start to the first later start at
    least ``target`` tokens on, kept when at most ``2 * target`` long."""
    if len(starts) < 2:
        return np.zeros((0, 2), np.int64)
    ends_at = np.searchsorted(starts, starts + target, side="left")
    found = ends_at < len(starts)
    begin, end = starts[found], starts[ends_at[found]]
    fits = end - begin <= 2 * target
    return np.stack([begin[fits], end[fits]], axis=1)


def segments(ids: np.ndarray, vocabulary: Vocabulary, span: int) -> list[np.ndarray]:
    """The window cut at its unit starts; at line ends when it has fewer than MIN_SEGMENTS
    units, then at sentence ends too, then into fixed spans of ``span`` tokens."""
    cuts = unit_starts(ids, vocabulary)
    if len(cuts) + 1 >= MIN_SEGMENTS:
        return np.split(ids, cuts)
    for ends in (vocabulary.line_ends, np.union1d(vocabulary.line_ends, vocabulary.sentence_ends)):
        cuts = np.flatnonzero(np.isin(ids[:-1], ends)) + 1
        if len(cuts) + 1 >= MIN_SEGMENTS:
            return np.split(ids, cuts)
    return np.split(ids, np.arange(span, len(ids), span))
