"""What the scorer does not implement is refused with one line naming it, never scored approximately."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from longattn_assets.model.families import SUPPORTED_MODEL_TYPES
from longattn_assets.model.layer0 import load_layer0
from longattn_assets.model.source import ModelFileError
from longattn_assets.scoring.scorer import Layer0Scorer
from longattn_assets.validation import InvalidSetting

from .tiny_models import BASE, GEMMA_SLIDING_WINDOW, build, text_window


def _config_only(folder: Path, **config) -> str:
    """A model folder with just a config.json: refusals come before any tensor is read."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


@pytest.fixture(scope="module")
def gemma2(tmp_path_factory) -> Path:
    return build("gemma2", tmp_path_factory.mktemp("gemma2"))


@pytest.fixture(scope="module")
def gemma3(tmp_path_factory) -> Path:
    return build("gemma3_text", tmp_path_factory.mktemp("gemma3"))


def test_unsupported_model_type_is_one_line_listing_the_supported_ones(tmp_path):
    with pytest.raises(ModelFileError) as caught:
        load_layer0(_config_only(tmp_path / "m", model_type="gpt_neox", **BASE))
    line = _one_line(caught.value)
    assert "model_type 'gpt_neox' is not supported; supported: " + ", ".join(SUPPORTED_MODEL_TYPES) in line
    for family in ("qwen3", "qwen3_moe", "gemma2", "gemma3", "gemma3_text", "phi3", "olmo2", "mixtral", "llama"):
        assert family in line


def test_unsupported_model_type_names_the_feature_it_lacks(tmp_path):
    with pytest.raises(ModelFileError, match=r"'deepseek_v3' is not supported \(it uses multi-head latent attention"):
        load_layer0(_config_only(tmp_path / "m", model_type="deepseek_v3", **BASE))


@pytest.mark.parametrize(
    "config,feature",
    [
        ({"rope_parameters": {"rope_type": "proportional", "rope_theta": 1e4}}, "rope_type 'proportional' is not one of"),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 0}}, "'factor' must be a finite number > 0"),
        ({"kv_lora_rank": 64}, "multi-head latent attention (MLA, kv_lora_rank)"),
        ({"partial_rotary_factor": 0.5}, "partial rotary embeddings (partial_rotary_factor 0.5) in llama"),
    ],
    ids=["unknown-rope-type", "rope-factor-0", "mla", "partial-rotary"],
)
def test_a_feature_the_scorer_does_not_implement_is_refused_by_name(tmp_path, config, feature):
    with pytest.raises(ModelFileError) as caught:
        load_layer0(_config_only(tmp_path / "m", model_type="llama", **BASE, **config))
    line = _one_line(caught.value)
    assert feature in line and "which the scorer does not implement" in line


def test_bidirectional_gemma_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match=r"bidirectional attention"):
        load_layer0(_config_only(tmp_path / "m", model_type="gemma3_text", **BASE, use_bidirectional_attention=True))


def test_an_activation_the_lower_layers_would_need_is_refused_only_there(tmp_path):
    folder = build("llama-linear", tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"hidden_act": "relu2"}))
    assert load_layer0(str(folder), layer=0).layer == 0  # layer 0 never runs an MLP
    with pytest.raises(ModelFileError, match=r"the MLP activation 'relu2'"):
        load_layer0(str(folder), layer=1)


def test_attention_sinks_in_the_checkpoint_are_refused(tmp_path):
    folder = build("llama-linear", tmp_path / "m")
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    save_file({"model.layers.0.self_attn.sinks": torch.zeros(4)}, str(folder / "sinks.safetensors"))
    index["weight_map"]["model.layers.0.self_attn.sinks"] = "sinks.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(ModelFileError, match=r"model.layers.0.self_attn.sinks \(attention sinks\), which the scorer"):
        load_layer0(str(folder))


def test_a_layer_the_model_does_not_have_is_an_invalid_setting(gemma2):
    with pytest.raises(InvalidSetting, match=r"layer: got 3, expected a layer of the model: 0 to 2"):
        load_layer0(str(gemma2), layer=3)


def test_a_rope_override_is_checked_like_the_option(gemma2):
    with pytest.raises(InvalidSetting, match=r"'factor' must be a finite number > 0"):
        load_layer0(str(gemma2), rope_scaling={"rope_type": "linear", "factor": 0})


@pytest.mark.parametrize(
    "fixture,model_type,first_global", [("gemma2", "gemma2", 1), ("gemma3", "gemma3_text", 2)]
)
def test_a_local_layer_is_refused_naming_the_first_global_layer(fixture, model_type, first_global, request):
    # Gemma's layer 0 slides over 32 positions: a 48-token sequence is longer, so its
    # long-range attention would be cut off. The message says which layer to score instead;
    # no other layer is scored unless LONGATTN_LAYER asks for it.
    folder = request.getfixturevalue(fixture)
    scorer = Layer0Scorer(load_layer0(str(folder)), device="cpu", bos_token_id=1)
    with pytest.raises(ValueError) as caught:
        scorer.score([text_window(GEMMA_SLIDING_WINDOW - 1), text_window(47)])
    line = _one_line(caught.value)
    assert line.startswith(f"layer 0 of this {model_type} model attends to its last 32 positions only")
    assert "a local, sliding-window layer" in line and "fewer than the 48 tokens" in line
    assert f"LONGATTN_LAYER={first_global} (longattn score --layer {first_global}) names the first one" in line
    assert len(scorer.score([text_window(GEMMA_SLIDING_WINDOW - 1)])) == 1  # it fits the window


def test_a_model_without_a_global_layer_says_how_long_windows_may_be(tmp_path):
    folder = build("mistral", tmp_path / "m")
    scorer = Layer0Scorer(load_layer0(str(folder), layer=2), device="cpu", bos_token_id=1)
    with pytest.raises(ValueError, match=r"as every layer does.*use windows of at most 31 tokens"):
        scorer.score([text_window(47)])


def test_gemma_embedding_scale_is_rounded_to_the_checkpoint_dtype():
    # transformers multiplies by sqrt(hidden) cast to the embeddings' dtype: in bfloat16
    # sqrt(3072) = 55.4256 becomes 55.5, as in Gemma's reference implementation.
    from longattn_assets.model.families import Family
    from longattn_assets.model.layer0 import _embed_scale

    family = Family("gemma2", 0, 1, 3072, 8, 4, 256, 1e-6, 8192, {}, (), gemma=True)
    assert _embed_scale(family, torch.bfloat16) == 55.5
    assert _embed_scale(family, torch.float32) == pytest.approx(3072**0.5, rel=1e-7)
    assert _embed_scale(family, torch.float32) != 55.5


def test_longrope_factors_must_cover_the_rotary_dimensions(tmp_path):
    rope = {"rope_type": "longrope", "rope_theta": 1e4, "factor": 4.0, "original_max_position_embeddings": 64,
            "short_factor": [1.0] * 3, "long_factor": [2.0] * 3}  # fmt: skip
    with pytest.raises(ModelFileError, match=r"'short_factor' has 3 factors, the rotary dimension 16 needs 8"):
        load_layer0(_config_only(tmp_path / "m", model_type="llama", **BASE, rope_parameters=rope))
