"""A data root with two categories selected through Dagster, and readers of what an export wrote."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from longattn_assets.definitions import assets
from longattn_assets.partitions import shard_partitions
from longattn_assets.resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from tests.corpus_fixtures import stdlib_sources, write_jsonl

WINDOW = 64
DOC_CHARS = 1_500
CATEGORIES = ("code", "book")
BY_NAME = {a.key.to_user_string(): a for a in assets}


def resources(root: Path, corpus: Path, **windowing) -> dict:
    return {
        "data_root": DataRoot(root=str(root)),
        "corpus_input": CorpusInput(input_dir=str(corpus)),
        "windowing": Windowing(window_size=WINDOW, **windowing),
        "attention_scorer": AttentionScorer(device="cpu"),
    }


def materialize(names: list[str], partition, res: dict, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets, selection=[BY_NAME[n] for n in names], partition_key=partition, resources=res,
        raise_on_error=False, **kwargs,
    )  # fmt: skip


def failure(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    return " ".join(e.step_failure_data.error.message for e in result.all_events if e.is_step_failure)


@pytest.fixture(scope="session")
def selected_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(corpus, data root) with code and book ingested, windowed (64 tokens), scored and selected
    (keep half) through Dagster: about 70 windows per category. Read only: copy it to change it."""
    base = tmp_path_factory.mktemp("training")
    corpus = base / "input"
    for category, offset in zip(CATEGORIES, (0, 40)):
        docs = stdlib_sources(12, min_chars=DOC_CHARS, offset=offset)
        write_jsonl(corpus / category / "part-0.jsonl", [{"id": n, "text": t[:DOC_CHARS]} for n, t in docs])
    root = base / "data"
    res = resources(root, corpus)
    for category in CATEGORIES:
        assert materialize(["raw_corpus"], category, res).success
        for shard in shard_partitions.get_partition_keys():
            key = dg.MultiPartitionKey({"category": category, "shard": shard})
            assert materialize(["windowed_chunks", "scored_chunks"], key, res).success
        assert materialize(["longabc_dataset"], category, res).success
    return corpus, root


@pytest.fixture
def selected_root(selected_template, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the template, inputs and data root, for one test to change: (corpus, data root).
    The inputs are copied too: a test that adds a document must not make every later test's
    data root stale (raw_corpus is current only for the inputs it was read from)."""
    template_corpus, template = selected_template
    corpus, root = tmp_path / "input", tmp_path / "data"
    shutil.copytree(template_corpus, corpus)
    shutil.copytree(template, root)
    return corpus, root


def window_tokens(root: Path, category: str) -> dict[str, list[int]]:
    """data_id -> token ids, as windowed_chunks holds them."""
    tokens = {}
    for path in sorted((root / "windowed_chunks" / f"category={category}").glob("shard=*.parquet")):
        table = pq.read_table(path, columns=["data_id", "token_ids"])
        tokens.update(zip(table.column("data_id").to_pylist(), table.column("token_ids").to_pylist()))
    return tokens


def kept_in_rank_order(root: Path, category: str) -> list[str]:
    selected = root / "longabc_dataset" / f"category={category}" / "selected.parquet"
    return pq.read_table(selected, columns=["data_id"]).column("data_id").to_pylist()


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def read_mds(folder: Path) -> list[dict]:
    """Every sample, in order, through mosaicml-streaming's StreamingDataset on the local folder."""
    from longattn_assets.training.mds import streaming_package

    streaming = streaming_package()
    dataset = streaming.StreamingDataset(local=str(folder), shuffle=False, batch_size=1)
    # copies: a sample's arrays are views of the shard's memory map, gone with the dataset
    samples = [dataset[i] for i in range(len(dataset))]
    return [{"input_ids": s["input_ids"].copy(), "data_id": s["data_id"], "category": s["category"]} for s in samples]


def read_megatron(prefix: Path) -> list:
    """Every document through megatron-core's IndexedDataset."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    dataset = IndexedDataset(str(prefix))
    assert dataset.document_indices.tolist() == list(range(len(dataset) + 1))  # a document per window
    return [dataset[i].copy() for i in range(len(dataset))]  # copies, as for MDS


def read_hf(folder: Path, cache: Path):
    """The hf/ folder through its card, as ``datasets.load_dataset`` reads it."""
    import datasets

    return datasets.load_dataset(str(folder), split="train", cache_dir=str(cache))
