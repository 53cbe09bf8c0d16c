"""The viewer's ranking is the selection's, and it reads exactly the rows a page shows."""

from __future__ import annotations

import glob

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from longattn_assets.browse.ranking import CategoryRanking
from longattn_assets.selection.rules import SelectionSettings
from longattn_assets.selection.select import select_category
from tests.browse.conftest import HEADS, text_of

SETTINGS = SelectionSettings.from_options(keep_fraction=0.3)


@pytest.fixture
def ranking(category):
    ranking = CategoryRanking(*category, SETTINGS)
    yield ranking
    ranking.close()


def test_pages_follow_the_selection_ranking_kept_and_dropped(category, ranking):
    expected = select_category(*category, **SETTINGS.options()).table
    assert ranking.n == expected.num_rows == 450
    rows = [row for first in range(1, 451, 50) for row in ranking.page(first, 50)]
    assert [r.rank for r in rows] == list(range(1, 451))
    assert [r.data_id for r in rows] == expected.column("data_id").to_pylist()
    assert [r.selected for r in rows] == expected.column("selected").to_pylist()
    assert [r.lds for r in rows] == expected.column("lds").to_pylist()
    assert sum(r.selected for r in rows) == ranking.summary.kept == 135
    assert ranking.page(440, 50)[-1].rank == 450 and ranking.page(451, 50) == []


def test_a_window_has_its_text_and_per_head_scores(category, ranking):
    scores = pa.concat_tables(pq.read_table(p) for p in sorted(glob.glob(category[1])))
    for rank in (1, 136, 450):
        window = ranking.window(rank)
        assert window.row.rank == rank
        assert window.content == text_of(window.row.data_id)
        row = scores.filter(pc.equal(scores.column("data_id"), window.row.data_id))
        assert window.ds_heads == row.column("ds_heads")[0].as_py() and len(window.ds_heads) == HEADS
        assert window.du_heads == row.column("du_heads")[0].as_py()
    assert ranking.window(0) is None and ranking.window(451) is None


def test_jump_by_id_and_previews(ranking):
    row = ranking.page(200, 1)[0]
    assert ranking.rank_of(row.data_id) == 200
    assert ranking.rank_of("book-nope") is None
    previews = ranking.previews([1, 200, 450], chars=20)
    assert previews[200] == text_of(row.data_id)[:20]
    assert set(previews) == {1, 200, 450}
