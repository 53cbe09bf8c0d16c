"""Layer-0 loaders read exactly the tensors layer-0 attention needs, and read them right."""

import json

import pytest
import safetensors
import torch

from longattn_assets.model.layer0 import ModelFileError, load_layer0
from longattn_assets.model.source import ModelNotFoundError, ModelSource, resolve_model


def test_gguf_weights_equal_transformers_gguf_loading(smollm2_weights, smollm2_hf_model):
    layer = smollm2_hf_model.model.layers[0]
    assert torch.equal(smollm2_weights.embed_tokens, smollm2_hf_model.model.embed_tokens.weight)
    assert torch.equal(smollm2_weights.input_layernorm, layer.input_layernorm.weight)
    assert torch.equal(smollm2_weights.q_proj, layer.self_attn.q_proj.weight)
    assert torch.equal(smollm2_weights.k_proj, layer.self_attn.k_proj.weight)
    config = smollm2_hf_model.config
    assert (smollm2_weights.num_heads, smollm2_weights.num_kv_heads) == (9, 3)
    assert smollm2_weights.head_dim == config.head_dim == 64
    assert smollm2_weights.rope_theta == config.rope_parameters["rope_theta"]
    assert smollm2_weights.rms_norm_eps == pytest.approx(config.rms_norm_eps)


def test_gguf_reads_only_the_four_layer0_tensors(smollm2_weights):
    # token_embd Q8_0 (49152 x 576 -> 34 bytes per 32 values), norm F32, q/k Q4_1 (20 per 32).
    expected = 49152 * 576 // 32 * 34 + 576 * 4 + 576 * 576 // 32 * 20 + 192 * 576 // 32 * 20
    assert smollm2_weights.bytes_read == expected
    assert smollm2_weights.fingerprint.startswith("mdl-") and len(smollm2_weights.fingerprint) == 20


class _Spy:
    """Wraps safetensors.safe_open to record the files opened and the tensors read."""

    def __init__(self, real):
        self.real, self.opened, self.read = real, [], []

    def __call__(self, path, *args, **kwargs):
        self.opened.append(str(path))
        handle = self.real(path, *args, **kwargs)
        spy = self

        class Handle:
            def __enter__(self):
                handle.__enter__()
                return self

            def __exit__(self, *exc):
                return handle.__exit__(*exc)

            def keys(self):
                return handle.keys()

            def get_tensor(self, name):
                spy.read.append(name)
                return handle.get_tensor(name)

        return Handle()


def test_sharded_checkpoint_reads_only_layer0_tensors_and_their_shards(
    sharded_llama_dir, monkeypatch
):
    spy = _Spy(safetensors.safe_open)
    monkeypatch.setattr(safetensors, "safe_open", spy)
    weights = load_layer0(str(sharded_llama_dir))
    wanted = {
        "model.embed_tokens.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",
    }
    assert set(spy.read) == wanted
    weight_map = json.loads((sharded_llama_dir / "model.safetensors.index.json").read_text())[
        "weight_map"
    ]
    needed_shards = {str(sharded_llama_dir / weight_map[name]) for name in wanted}
    assert set(spy.opened) == needed_shards
    assert len(set(weight_map.values())) > len(needed_shards)  # some shards were never opened
    assert weights.bytes_read == sum(
        t.numel() * 4
        for t in (weights.embed_tokens, weights.input_layernorm, weights.q_proj, weights.k_proj)
    )
    assert weights.rope_scaling["rope_type"] == "llama3"
    assert (weights.num_heads, weights.num_kv_heads, weights.head_dim) == (4, 2, 16)


def test_rope_theta_override_changes_settings_and_fingerprint(smollm2_source, smollm2_weights):
    other = load_layer0(smollm2_source, rope_theta=10000.0)
    assert other.rope_theta == 10000.0
    assert other.fingerprint != smollm2_weights.fingerprint


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_layer0(str(tmp_path / "nowhere.gguf"))
    with pytest.raises(ModelNotFoundError):
        load_layer0(str(tmp_path / "no_such_dir"))


def test_corrupt_gguf_names_the_file(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    with pytest.raises(ModelFileError, match="broken.gguf"):
        load_layer0(ModelSource(spec=str(bad), kind="gguf", path=bad))


def test_corrupt_safetensors_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "llama", "num_attention_heads": 2, "hidden_size": 8})
    )
    (tmp_path / "model.safetensors").write_bytes(
        b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!"
    )
    with pytest.raises(ModelFileError, match="model.safetensors"):
        load_layer0(resolve_model(str(tmp_path)))


def test_missing_shard_is_reported_before_reading(sharded_llama_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in sharded_llama_dir.iterdir():
        (broken / item.name).symlink_to(item)
    weight_map = json.loads((sharded_llama_dir / "model.safetensors.index.json").read_text())[
        "weight_map"
    ]
    (broken / weight_map["model.layers.0.self_attn.q_proj.weight"]).unlink()
    with pytest.raises(ModelNotFoundError, match="missing"):
        load_layer0(str(broken))
