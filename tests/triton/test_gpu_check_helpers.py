"""The pure parts of benchmarks/gpu_check.py: work count, hardware limit, comparisons."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

CHECK = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


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


def test_the_limit_at_a_measured_mma_rate_keeps_the_exp_bound(bench):
    # The issue measured ~790 TFLOP/s of bf16 matmul on its H200, not the datasheet's 989.
    h200 = hardware(bench, "H200 SXM")
    datasheet = bench.work_limit(32768, heads=32, head_dim=128, hw=h200)
    measured = bench.work_limit(32768, heads=32, head_dim=128, hw=h200, mma_rate=790e12)
    assert measured.mma_s == pytest.approx(datasheet.flops / 790e12)
    assert measured.exp_s == datasheet.exp_s
    assert measured.seconds == measured.mma_s > datasheet.seconds


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
    assert table in (CHECK.parents[1] / "docs" / "gpu.md").read_text(encoding="utf-8")


def test_relative_errors_are_per_head_over_the_reference_heads(bench):
    # The CPU reference may score only the first kv group: the rest of got is not compared.
    want = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    got = torch.tensor([1.0, 2.002, 3.0, 9.0], dtype=torch.float32)
    errors = bench.relative_errors(got, want)
    assert errors[0] == 0.0 and errors[1] == pytest.approx(1e-3, rel=1e-3) and errors[2] == 0.25
    assert len(errors) == 3


def test_refuses_to_run_without_cuda(bench, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert bench.main(["--output", "unused"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().out
