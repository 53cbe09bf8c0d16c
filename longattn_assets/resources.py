"""Dagster resources, each configured from the environment (see settings.py).

Heavy state (the tokenizer, layer 0's weights) lives in private attributes and is loaded
lazily on first use: ``setup_for_execution`` runs again in every step subprocess, so an
eager load there would pay the cost even for steps that never score.

Every field with a range is checked by validation.py when the resource is built from its
config, so a bad value (from the launchpad, run config or the environment) fails the run
with one line naming it before any step does work.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import model_validator

from . import settings
from .corpus.budget import MemoryPlan, parse_size
from .corpus.input_file import location, redact, text_fields
from .model.source import ModelSource, resolve_model, source_identity
from .model.tokenizer import ModelTokenizer, load_tokenizer
from .storage import DataLayout
from .validation import Dtype, Kernel, check_device_available, check_fields


class DataRoot(dg.ConfigurableResource):
    """The folder under which every asset writes its Hive-partitioned files."""

    root: str = str(settings.data_root())

    @property
    def layout(self) -> DataLayout:
        return DataLayout(self.root)


class CorpusInput(dg.ConfigurableResource):
    """Where the raw input files are (a folder or an s3://, gs://, hf:// URL with one
    sub-folder per category) and how ingest reads them."""

    input_dir: str = settings.input_dir()
    # The column of a row's text; empty: content, else text.
    text_column: str = settings.text_column()
    # Peak memory of ingest's workers and buffers together, whatever the input size.
    memory_budget: str = settings.ingest_memory()
    workers: int = settings.ingest_workers()

    @model_validator(mode="after")
    def _check(self) -> CorpusInput:
        check_fields(self, "corpus_input", ("memory_budget", "workers", "text_column"))
        return self

    @property
    def location(self) -> str:
        """The input folder as an absolute path, or the URL as given (never show it: see ``shown``)."""
        return location(self.input_dir)

    @property
    def shown(self) -> str:
        """The location without user info or query: what logs may say."""
        return redact(self.location)

    @property
    def fields(self) -> tuple[str, ...]:
        return text_fields(self.text_column)

    def memory_plan(self) -> MemoryPlan:
        return MemoryPlan.for_budget(parse_size(self.memory_budget), self.workers)


class Windowing(dg.ConfigurableResource):
    """How documents become windows (DESIGN 1.1)."""

    window_size: int = settings.window_size()
    sample_fraction: float = 1.0

    @model_validator(mode="after")
    def _check(self) -> Windowing:
        check_fields(self, "windowing", ("window_size", "sample_fraction"))
        return self


SCORER_FIELDS = (
    "model", "device", "dtype", "batch_tokens", "block_size", "rope_theta", "rope_scaling",
    "kernel", "resume_chunk_windows", "layer", "workers",
)


@functools.lru_cache(maxsize=2)
def _process_scorer(settings: tuple, path: str, identity: str):
    """Scorers kept by the process: ``path`` and ``identity`` (its files' sizes and mtimes,
    ``source_identity``) make a changed model a new key."""
    from .scoring.factory import build_scorer

    fields = dict(settings)
    rope_scaling = fields.pop("rope_scaling")
    return build_scorer(
        fields.pop("model"), rope_scaling=json.loads(rope_scaling) if rope_scaling else None, **fields
    )


@functools.lru_cache(maxsize=4)
def _process_model_identity(
    path: str, identity: str, model: str, rope_theta: float | None, rope_scaling: str | None, layer: int
) -> dict:
    """Model identities kept by the process (every run's resource copy asks for one)."""
    from .model.layer0 import load_layer0
    from .scoring.windows_file import model_identity

    weights = load_layer0(
        model, rope_theta=rope_theta, rope_scaling=json.loads(rope_scaling) if rope_scaling else None, layer=layer
    )
    return model_identity(weights)


class AttentionScorer(dg.ConfigurableResource):
    """Layer-0 attention scorer (DESIGN 1.2); the model also defines the tokenizer."""

    model: str = settings.model_spec()
    device: str = settings.device()
    dtype: Dtype = "auto"
    batch_tokens: int = 65536
    block_size: int = 512
    add_bos: bool = True
    rope_theta: float | None = None
    rope_scaling: str | None = None  # JSON, e.g. {"rope_type": "linear", "factor": 4.0}
    kernel: Kernel = "auto"
    # The decoder layer whose attention is scored (0: the paper's first layer).
    layer: int = settings.layer()
    # Windows scored between two saved parts: a killed step redoes at most this many.
    resume_chunk_windows: int = 256
    # CPU scoring workers (one core each); None: the CPUs the scoring process may use.
    workers: int | None = settings.scoring_workers()

    lock_dir: str = str(settings.cache_dir() / "device-locks")

    @model_validator(mode="after")
    def _check(self) -> AttentionScorer:
        check_fields(self, "attention_scorer", SCORER_FIELDS)
        return self

    def source(self) -> ModelSource:
        return resolve_model(self.model)

    def tokenizer(self) -> ModelTokenizer:
        return load_tokenizer(self.source())

    def _rope_scaling(self) -> dict | None:
        return json.loads(self.rope_scaling) if self.rope_scaling else None

    def model_identity(self) -> dict:
        """The fingerprint of the scored layer's weights and rope settings these settings score
        with, and those settings (read on the CPU, once per process and model files: no
        device is touched; a model file changed since makes a new key)."""
        source = self.source()
        return _process_model_identity(
            str(source.path), source_identity(source), self.model, self.rope_theta, self.rope_scaling, self.layer
        )

    def expected_scores(self) -> dict[str, object]:
        """The scorer recipe scores made with these settings on this machine record: what makes
        scores current (``consistency.Expected.scores``); another checkpoint, even with the same
        tokenizer, changes the model fingerprint in it."""
        from .scoring.windows_file import expected_scorer_recipe

        return expected_scorer_recipe(
            self.model_identity(), bos_token_id=self.tokenizer().bos_token_id, device=self.device,
            dtype=self.dtype, add_bos=self.add_bos, block_size=self.block_size,
        )  # fmt: skip

    def scorer(self, device: str):
        """The :class:`Layer0Scorer` on ``device``, built once per process for these settings
        and model file: Dagster gives every run its own copy of a resource, and the runs of one
        process (the demo's) share the scorer's weights, token table, RoPE tables and workers."""
        from .scoring.scorer import resolve_device

        source = self.source()
        device = str(resolve_device(device))  # "auto" names the device a session would claim here
        fields = {name: getattr(self, name) for name in SCORER_FIELDS if name not in ("device", "resume_chunk_windows")}
        key = tuple(sorted((fields | {"add_bos": self.add_bos, "device": device}).items()))
        return _process_scorer(key, str(source.path), source_identity(source))

    @contextmanager
    def scoring_session(self) -> Iterator[Any]:
        """A scorer on a device this process holds alone for the duration of the block."""
        from .scoring.devices import claim_device

        check_device_available(self.device, "attention_scorer.device")
        with claim_device(self.device, Path(self.lock_dir)) as device:
            yield self.scorer(device)
