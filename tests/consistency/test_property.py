"""Any sequence of setting changes and reruns of the demo ends equal to a fresh run."""

import itertools
import shutil

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.consistency.conftest import code_rows, write_corpus
from tests.consistency.pipeline import (
    WINDOW,
    dataset,
    fresh,
    materialize,
    run_demo,
    shard_key,
    started,
)

START = {"shards": 2, "window": WINDOW, "documents": 8}
CHANGES = st.one_of(
    st.tuples(st.just("shards"), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("window"), st.sampled_from([WINDOW, 2 * WINDOW])),
    st.tuples(st.just("documents"), st.sampled_from([7, 8, 9])),  # drop or add documents
    st.tuples(st.just("touch"), st.none()),  # input rewritten with the same content
    st.tuples(st.just("rescore"), st.none()),  # a shard rescored by hand under another rope_theta
)
_EXAMPLE = itertools.count()


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(CHANGES, min_size=1, max_size=3))
def test_changes_and_reruns_end_equal_to_a_fresh_run(counts, corpus, scratch, tmp_path, changes):
    case = tmp_path / f"example-{next(_EXAMPLE)}"
    inputs = case / "input"  # the corpus, copied where a change may rewrite it
    shutil.copytree(corpus, inputs)
    root = started(counts, START["shards"], corpus, scratch, case / "data")
    current = dict(START)
    source = corpus
    for kind, value in changes:
        if kind == "touch":
            path = inputs / "code" / "part-0.jsonl"
            path.write_bytes(path.read_bytes())
            source = inputs
        elif kind == "rescore":
            result = materialize(counts, current["shards"], ["scored_chunks"], shard_key("00000"),
                                 root, source, current["window"], rope_theta=5_000.0)  # fmt: skip
            assert result.success
        else:
            current[kind] = value
            if kind == "documents":
                shutil.rmtree(inputs)
                write_corpus(inputs, code_rows(value))
                source = inputs
        run_demo(counts, current["shards"], root, source, current["window"])
    assert dataset(root) == fresh(counts, current["shards"], source, scratch, current["window"]), changes
