"""Any sequence of setting changes and reruns of the demo ends equal to a fresh run."""

import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.consistency.conftest import code_rows, write_corpus
from tests.consistency.pipeline import WINDOW, dataset, fresh, materialize, run_demo, shard_key

START = {"shards": 2, "window": WINDOW, "documents": 6}
CHANGES = st.one_of(
    st.tuples(st.just("shards"), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("window"), st.sampled_from([WINDOW, 2 * WINDOW])),
    st.tuples(st.just("documents"), st.sampled_from([5, 6, 7])),  # drop or add documents
    st.tuples(st.just("touch"), st.none()),  # input rewritten with the same content
    st.tuples(st.just("rescore"), st.none()),  # a shard rescored by hand under another rope_theta
)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(CHANGES, min_size=1, max_size=3))
def test_changes_and_reruns_end_equal_to_a_fresh_run(counts, tmp_path_factory, changes):
    scratch = tmp_path_factory.mktemp("property")
    base = tmp_path_factory.getbasetemp() / "property-start"
    if not base.exists():  # the first example's starting root, copied by the others
        run_demo(counts, START["shards"], base / "data", write_corpus(base / "input", code_rows(START["documents"])))
    shutil.copytree(base, scratch, dirs_exist_ok=True)
    root, current = scratch / "data", dict(START)
    for kind, value in changes:
        corpus = scratch / "input"
        if kind == "touch":
            path = corpus / "code" / "part-0.jsonl"
            path.write_bytes(path.read_bytes())
        elif kind == "rescore":
            partition = shard_key("00000")
            result = materialize(counts, current["shards"], ["windowed_chunks", "scored_chunks"], partition,
                                 root, corpus, current["window"], rope_theta=5_000.0)  # fmt: skip
            assert result.success
        else:
            current[kind] = value
            if kind == "documents":
                shutil.rmtree(corpus)
                write_corpus(corpus, code_rows(value))
        run_demo(counts, current["shards"], root, corpus, current["window"])
    expected = fresh(counts, current["shards"], scratch / "input", Path(tmp_path_factory.mktemp("fresh")), current["window"])
    assert dataset(root) == expected, changes
