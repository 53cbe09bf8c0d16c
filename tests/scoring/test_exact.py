"""The exact arithmetic: products of scaled integers, row chunks, the table of projected tokens."""

import pytest
import torch

from longattn_assets.scoring import projections, statistics
from longattn_assets.scoring.exact import exact_product, operand_bits, pow2, scaled_integers
from longattn_assets.scoring.projections import Layer0Projector


def test_exact_product_is_the_integer_product_scaled():
    gen = torch.Generator().manual_seed(0)
    left = torch.randn(40, 64, generator=gen) * torch.logspace(-30, 30, 40)[:, None]
    right = torch.randn(50, 64, generator=gen) * 1e-3
    bits = operand_bits(64)
    a, b = scaled_integers(left, bits[0]), scaled_integers(right, bits[1])

    def integers(rows, nbits):  # each row: an integer of at most nbits bits times 2**-shift
        _, exponent = torch.frexp(rows.abs().amax(-1, keepdim=True))
        shift = nbits - exponent.to(torch.int64)
        whole = rows * pow2(shift)
        assert torch.equal(whole, whole.round()) and whole.abs().max() <= 2**nbits
        return whole.to(torch.int64), shift

    (n_a, s_a), (n_b, s_b) = integers(a, bits[0]), integers(b, bits[1])
    sums = n_a @ n_b.T  # int64: exact
    assert sums.abs().max() < 2**53
    expected = sums.double() * pow2(-s_a) * pow2(-s_b).T
    assert torch.equal(exact_product(a, b), expected)
    assert torch.equal(exact_product(a[:7], b), expected[:7])  # any blocking, same bits


# (rows, softcap): Gemma 2's soft-capping adds a tanh, which has the same scalar tail as exp2
@pytest.mark.parametrize("rows,softcap", [(16, None), (48, None), (128, None), (48, 6.0)])
def test_statistics_bits_do_not_depend_on_the_row_chunk(rows, softcap, monkeypatch):
    gen = torch.Generator().manual_seed(3)
    q, k = torch.randn(6, 1100, 32, generator=gen) * 2, torch.randn(2, 1100, 32, generator=gen) * 2
    family = {} if softcap is None else {"softmax_scale": 24**-0.5, "softcap": softcap}
    whole = statistics.long_range_statistics(q, k, block_size=256, **family)
    monkeypatch.setattr(statistics, "ROW_CHUNK", rows)
    chunked = statistics.long_range_statistics(q, k, block_size=256, **family)
    assert all(torch.equal(a, b) for a, b in zip(whole, chunked, strict=True))


def test_projected_tokens_are_computed_once_with_the_same_bits(smollm2_weights, smollm2_tokenizer, text_ids, monkeypatch):
    table = Layer0Projector(smollm2_weights, bos_token_id=smollm2_tokenizer.bos_token_id)
    monkeypatch.setattr(projections, "TOKEN_TABLE_BYTES", 0)
    plain = Layer0Projector(smollm2_weights, bos_token_id=smollm2_tokenizer.bos_token_id)
    computed = []
    rows = Layer0Projector._rows
    monkeypatch.setattr(Layer0Projector, "_rows", lambda self, ids: computed.append(len(ids)) or rows(self, ids))
    first, second = text_ids[:300], text_ids[200:600]
    for window in (first, second):
        for a, b in zip(table.project_one(window), plain.project_one(window), strict=True):
            assert torch.equal(a, b)
    bos = {table.bos_token_id}
    distinct = [len(set(first) | bos), len((set(second) | bos) - (set(first) | bos))]
    assert computed[0::2] == distinct  # the table's calls; the plain projector's are in between


@pytest.mark.parametrize("rotary", [64, 32])  # full, and partial rotary (Phi-3)
def test_rotary_is_llamas_formula_bit_for_bit_in_any_layout(rotary):
    from longattn_assets.scoring.rope import apply_rotary

    gen = torch.Generator().manual_seed(rotary)
    rows = torch.randn(300, 5, 64, generator=gen)  # [L, heads, D], as the projector rotates them
    angles = torch.randn(300, rotary // 2, generator=gen) * 40
    cos, sin = torch.cat((angles.cos(),) * 2, -1), torch.cat((angles.sin(),) * 2, -1)

    def llama(x):  # transformers' apply_rotary_pos_emb, then the dimensions past the rotary ones
        part = x[..., :rotary]
        half = torch.cat((-part[..., rotary // 2 :], part[..., : rotary // 2]), dim=-1)
        return torch.cat((part * cos + half * sin, x[..., rotary:]), dim=-1)

    heads_first = rows.transpose(0, 1)  # [heads, L, D], not contiguous
    assert torch.equal(apply_rotary(heads_first, cos, sin), llama(heads_first))
    assert torch.equal(apply_rotary(rows, cos[:, None], sin[:, None]).transpose(0, 1), llama(heads_first))


def test_heads_rotated_one_by_one_are_the_window_rotated_at_once(smollm2_weights, smollm2_tokenizer, text_ids):
    projector = Layer0Projector(smollm2_weights, bos_token_id=smollm2_tokenizer.bos_token_id)
    window = text_ids[:1000]
    q, k = projector.project_one(window)
    rows = projector.window_rows(window)
    group, offset = projector.num_heads // projector.num_kv_heads, 250
    for h in range(projector.num_kv_heads):
        heads = slice(h * group, (h + 1) * group)
        assert torch.equal(rows.queries(heads, offset).transpose(0, 1), q[heads, offset:])
        assert torch.equal(rows.keys(h), k[h])
    statistics_of_rows = statistics.WindowStatistics(rows).compute()
    assert all(torch.equal(a, b) for a, b in zip(statistics_of_rows, statistics.long_range_statistics(q, k), strict=True))
