"""The pure parts of benchmarks/gpu_bench.py: work count, hardware limit, rope, comparisons."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_bench"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_bench"]


@pytest.mark.parametrize("length", [1, 4, 5, 17, 64, 131])
def test_pair_count_is_rows_from_offset_times_their_causal_keys(bench, length):
    offset = length - 3 * (length // 4)
    brute = sum(1 for r in range(offset, length) for c in range(length) if c <= r)
    assert bench.causal_long_range_pairs(length) == brute


def hardware(bench, name):
    return next(hw for hw in bench.HARDWARE if hw.name == name)


def test_limit_of_the_8b_shape_at_32k(bench):
    limit = bench.work_limit(32768, heads=32, head_dim=128, hw=hardware(bench, "H200 SXM"))
    pairs = (32768 * 32769 - 8192 * 8193) // 2 * 32
    assert limit.exps == pairs
    assert limit.flops == 2 * 128 * pairs
    assert limit.mma_s == pytest.approx(limit.flops / 989e12)
    assert limit.exp_s == pytest.approx(pairs / (16 * 132 * 1.98e9))
    # About 4.2 ms: the tensor cores, not the exp units, bound a head dim of 128.
    assert limit.seconds == limit.mma_s == pytest.approx(4.17e-3, rel=0.01)


def test_the_limit_takes_the_rate_of_the_dtype(bench):
    a100 = hardware(bench, "A100")
    half = bench.work_limit(32768, heads=32, head_dim=128, hw=a100, dtype="float16")
    fp32 = bench.work_limit(32768, heads=32, head_dim=128, hw=a100, dtype="float32")
    assert half.mma_s == pytest.approx(half.flops / 312e12)
    # fp32 dots are IEEE FMAs, not tensor-core TF32: 19.5 TFLOP/s on an A100.
    assert fp32.seconds == fp32.mma_s == pytest.approx(fp32.flops / 19.5e12)


@pytest.mark.parametrize("name,sms,want", [
    ("NVIDIA A100-SXM4-80GB", 108, "A100"),
    ("NVIDIA A100 80GB PCIe", 108, "A100"),
    ("NVIDIA H100 80GB HBM3", 132, "H100 SXM"),
    ("NVIDIA H100 PCIe", 114, "H100 PCIe"),
    ("NVIDIA H200", 132, "H200 SXM"),
    ("NVIDIA L40S", 142, "L40S"),
])
def test_the_limit_follows_the_detected_device(bench, name, sms, want):
    assert bench.detect_hardware(name, sms).name == want


@pytest.mark.parametrize("name,sms", [("NVIDIA GeForce RTX 4090", 128), ("NVIDIA H100 NVL", 132),
                                      ("NVIDIA A100-SXM4-40GB MIG 3g.20gb", 42)])
def test_an_unknown_device_has_no_limit(bench, name, sms):
    assert bench.detect_hardware(name, sms) is None


def test_docs_give_the_expected_ms_per_window_of_each_gpu(bench, capsys):
    assert bench.main(["--limits"]) == 0
    table = capsys.readouterr().out.strip()
    assert {hw.name for hw in bench.HARDWARE} >= {"A100", "H100 SXM", "H200 SXM", "L40S"}
    assert table in (BENCH.parents[1] / "docs" / "gpu.md").read_text(encoding="utf-8")


def test_llama3_frequencies_match_transformers(bench):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params = dict(bench.LLAMA3_SCALING, rope_theta=500000.0)
    config = LlamaConfig(hidden_size=128, num_attention_heads=1, head_dim=128,
                         max_position_embeddings=131072, rope_parameters=params)
    want, _ = ROPE_INIT_FUNCTIONS["llama3"](config, None)
    got = bench.llama3_inverse_frequencies(128, 500000.0, bench.LLAMA3_SCALING)
    torch.testing.assert_close(got, want.float(), rtol=1e-6, atol=0.0)


def test_relative_difference_is_the_worst_head(bench):
    want = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    got = torch.tensor([1.0, 2.002, 4.0], dtype=torch.float32)
    assert bench.max_relative_difference(got, want) == pytest.approx(1e-3, rel=1e-3)


def test_refuses_to_run_without_cuda(bench, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert bench.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out
