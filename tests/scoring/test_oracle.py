"""Scores equal those computed from transformers' own eager layer-0 attention (DESIGN 4)."""

import pytest
import torch

from longattn_assets.model.layer0 import load_layer0
from longattn_assets.scoring.scorer import Layer0Scorer

from .conftest import attention_oracle

LENGTHS = [512, 1000, 2048]


def _assert_heads_match(score, oracle):
    ds, du = oracle
    torch.testing.assert_close(torch.from_numpy(score.ds_heads).double(), ds, rtol=1e-4, atol=0)
    torch.testing.assert_close(torch.from_numpy(score.du_heads).double(), du, rtol=1e-4, atol=0)
    assert score.ds == pytest.approx(float(ds.mean()), rel=1e-4)
    assert score.du == pytest.approx(float(du.mean()), rel=1e-4)


@pytest.fixture(scope="module")
def smollm2_scorer(smollm2_weights, smollm2_tokenizer):
    return Layer0Scorer(smollm2_weights, device="cpu", bos_token_id=smollm2_tokenizer.bos_token_id)


@pytest.mark.parametrize("length", LENGTHS)
def test_smollm2_gguf_matches_eager_attention(smollm2_scorer, smollm2_hf_model, text_ids, length):
    window = text_ids[1000 : 1000 + length - 1]
    oracle = attention_oracle(smollm2_hf_model, [smollm2_scorer.projector.bos_token_id, *window])
    _assert_heads_match(smollm2_scorer.score([window])[0], oracle)


@pytest.fixture(scope="module")
def llama_pair(sharded_llama_dir):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(
        sharded_llama_dir, attn_implementation="eager", dtype=torch.float32
    ).eval()
    scorer = Layer0Scorer(load_layer0(str(sharded_llama_dir)), device="cpu", bos_token_id=1)
    return model, scorer


@pytest.mark.parametrize("length", LENGTHS)
def test_sharded_gqa_llama3_rope_matches_eager_attention(llama_pair, text_ids, length):
    model, scorer = llama_pair
    window = text_ids[: length - 1]
    _assert_heads_match(scorer.score([window])[0], attention_oracle(model, [1, *window]))


def test_llama3_rope_scaling_is_applied(sharded_llama_dir, llama_pair, text_ids):
    # Without the scaling the scores differ: the oracle agreement above is not by accident.
    model, _ = llama_pair
    plain = Layer0Scorer(
        load_layer0(str(sharded_llama_dir), rope_scaling={"rope_type": "default"}),
        device="cpu",
        bos_token_id=1,
    )
    window = text_ids[:1023]
    ds, _ = attention_oracle(model, [1, *window])
    got = torch.from_numpy(plain.score([window])[0].ds_heads).double()
    assert not torch.allclose(got, ds, rtol=1e-3)


def test_single_file_qwen2_with_qk_bias_matches_eager_attention(tmp_path, text_ids):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1)
    config = Qwen2Config(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        attn = model.model.layers[0].self_attn
        for proj in (attn.q_proj, attn.k_proj):
            proj.weight.mul_(6.0)
            proj.bias.normal_(0, 1.0)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    eager = Qwen2ForCausalLM.from_pretrained(
        tmp_path, attn_implementation="eager", dtype=torch.float32
    ).eval()
    weights = load_layer0(str(tmp_path))
    assert weights.q_bias is not None and weights.k_bias is not None
    window = text_ids[3000:3299]
    scorer = Layer0Scorer(weights, device="cpu", bos_token_id=1)
    _assert_heads_match(scorer.score([window])[0], attention_oracle(eager, [1, *window]))
