"""A small corpus and the pipeline under several shard counts (see pipeline.py)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.consistency.pipeline import ShardCounts, shard_counts
from tests.corpus_fixtures import stdlib_sources, write_jsonl

DOC_CHARS = 2_400


def code_rows(count: int, offset: int = 0) -> list[dict]:
    return [
        {"id": name, "text": text[:DOC_CHARS]}
        for name, text in stdlib_sources(count, min_chars=DOC_CHARS, offset=offset)
    ]


def write_corpus(folder: Path, rows: list[dict]) -> Path:
    write_jsonl(folder / "code" / "part-0.jsonl", rows)
    return folder


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight real documents of about 700 tokens (some 50 windows of 128 tokens); read only."""
    return write_corpus(tmp_path_factory.mktemp("corpus"), code_rows(8))


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's fresh runs live."""
    return tmp_path_factory.mktemp("fresh")


@pytest.fixture
def counts() -> Iterator[ShardCounts]:
    with shard_counts() as generations:
        yield generations


def tiny_llama(folder: Path, seed: int) -> Path:
    """A random one-layer Llama with SmolLM2's tokenizer (the embedded model's), saved as
    transformers saves any checkpoint: two of them differ only in their weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from longattn_assets.model.tokenizer import load_tokenizer

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    (folder / "tokenizer.json").write_text(load_tokenizer("smollm2-135m").tokenizer.to_str())
    return folder


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two checkpoints with the same tokenizer and other layer-0 weights (as 8B and 70B)."""
    return tuple(tiny_llama(tmp_path_factory.mktemp(f"llama-{seed}"), seed) for seed in (0, 1))
