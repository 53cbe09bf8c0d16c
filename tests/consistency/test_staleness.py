"""What the Dagster UI shows: partitions go stale after a settings change (code versions)
and below a partition whose data changed (data versions), and a rerun with unchanged
data keeps them fresh."""

from pathlib import Path

import dagster as dg
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from tests.consistency.conftest import code_rows, write_corpus
from tests.consistency.pipeline import shard_key

FRESH, STALE = StaleStatus.FRESH, StaleStatus.STALE
ENV = {"LONGATTN_WINDOW_SIZE": "128", "LONGATTN_CATEGORIES": "code"}


def definitions(counts, **environment: str):
    counts.use(1, **(ENV | environment))
    return __import__("longattn_assets.definitions", fromlist=["defs"]).defs


def statuses(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, StaleStatus]:
    # the resolver behind the UI's stale status, as Dagster's own data-version tests build it
    resolver = get_stale_status_resolver(instance, list(defs.assets))
    keys = {"raw_corpus": "code", "windowed_chunks": shard_key("00000"), "scored_chunks": shard_key("00000"),
            "longabc_dataset": "code"}  # fmt: skip
    return {name: resolver.get_status(dg.AssetKey(name), key) for name, key in keys.items()}


def run(instance, defs, names: list[str], partition, root: Path, input_dir: Path) -> None:
    resources = {"data_root": {"root": str(root)}, "corpus_input": {"input_dir": str(input_dir)},
                 "attention_scorer": {"device": "cpu"}}  # fmt: skip
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey(n) for n in names})
    result = job.execute_in_process(
        instance=instance, partition_key=partition,
        run_config={"resources": {k: {"config": v} for k, v in resources.items()}},
    )  # fmt: skip
    assert result.success


def materialize(instance, defs, root: Path, input_dir: Path) -> None:
    run(instance, defs, ["raw_corpus"], "code", root, input_dir)
    run(instance, defs, ["windowed_chunks", "scored_chunks"], shard_key("00000"), root, input_dir)
    run(instance, defs, ["longabc_dataset"], "code", root, input_dir)


def test_settings_and_data_changes_show_as_stale_partitions(counts, tmp_path: Path):
    corpus = write_corpus(tmp_path / "input", code_rows(4))
    with dg.instance_for_test() as instance:
        defs = definitions(counts)
        materialize(instance, defs, tmp_path / "data", corpus)
        assert set(statuses(instance, defs).values()) == {FRESH}

        # LONGATTN_WINDOW_SIZE changed and the code location reloaded: the windows are stale
        # (a new code version); what is below them follows once they get a new data version.
        wider = definitions(counts, LONGATTN_WINDOW_SIZE="256")
        assert statuses(instance, wider) == {"raw_corpus": FRESH, "windowed_chunks": STALE,
                                             "scored_chunks": FRESH, "longabc_dataset": FRESH}  # fmt: skip
        run(instance, wider, ["windowed_chunks"], shard_key("00000"), tmp_path / "data", corpus)
        assert statuses(instance, wider) == {"raw_corpus": FRESH, "windowed_chunks": FRESH,
                                             "scored_chunks": STALE, "longabc_dataset": STALE}  # fmt: skip

        write_corpus(corpus, code_rows(4))  # the same documents written again: same data versions
        # the code location reloaded with the first settings (its modules active again: a
        # definitions object runs with the generation of the package it was loaded from)
        defs = definitions(counts)
        materialize(instance, defs, tmp_path / "data", corpus)
        assert set(statuses(instance, defs).values()) == {FRESH}

        write_corpus(corpus, code_rows(5))  # one more document: raw_corpus gets a new data version
        run(instance, defs, ["raw_corpus"], "code", tmp_path / "data", corpus)
        assert statuses(instance, defs) == {"raw_corpus": FRESH, "windowed_chunks": STALE,
                                            "scored_chunks": FRESH, "longabc_dataset": FRESH}  # fmt: skip
