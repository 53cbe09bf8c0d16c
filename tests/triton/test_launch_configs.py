"""The per-architecture launch config table and the limits a compiled entry is held to (no Triton needed)."""

import pytest
import torch

from longattn_assets.scoring import triton_configs
from longattn_assets.scoring.triton_configs import (
    ARCHITECTURES,
    DTYPES,
    HEAD_DIMS,
    LAUNCH_CONFIGS,
    PORTABLE_CAPABILITY,
    TORCH_ONLY,
    LaunchConfig,
    device_capability,
    launch_config,
)
from longattn_assets.scoring.triton_targets import KernelResources

KB = 1024


def test_table_covers_every_architecture_dtype_and_head_dim_once():
    every = {(a, d, h) for a in ARCHITECTURES for d in DTYPES for h in HEAD_DIMS}
    assert set(LAUNCH_CONFIGS) | set(TORCH_ONLY) == every
    assert not set(LAUNCH_CONFIGS) & set(TORCH_ONLY)
    assert {80, 86, 89, 90} <= set(ARCHITECTURES)


@pytest.mark.parametrize("key", sorted(TORCH_ONLY, key=str))
def test_combinations_left_to_torch_say_why(key):
    with pytest.raises(ValueError, match=TORCH_ONLY[key]):
        launch_config(*key)


def test_per_block_shared_memory_limits():
    # The opt-in maxima CUDA reports (cudaDevAttrMaxSharedMemoryPerBlockOptin).
    limits = {cap: arch.shared_memory_per_block for cap, arch in ARCHITECTURES.items()}
    assert limits == {80: 166912, 86: 101376, 89: 101376, 90: 232448, 100: 232448}


@pytest.mark.parametrize("key", sorted(LAUNCH_CONFIGS, key=str))
def test_lookup_returns_the_entry_of_the_architecture(key):
    assert launch_config(*key) is LAUNCH_CONFIGS[key]


@pytest.mark.parametrize("capability", [None, 75, 87, 120])
def test_unknown_architectures_and_the_interpreter_get_the_portable_entry(capability):
    for dtype in DTYPES:
        for head_dim in HEAD_DIMS:
            want = LAUNCH_CONFIGS[(PORTABLE_CAPABILITY, dtype, head_dim)]
            assert launch_config(capability, dtype, head_dim) is want
    smallest = min(arch.shared_memory_per_block for arch in ARCHITECTURES.values())
    assert ARCHITECTURES[PORTABLE_CAPABILITY].shared_memory_per_block == smallest


@pytest.mark.parametrize("head_dim", [32, 96, 256])
def test_head_dims_outside_the_table_have_no_config(head_dim):
    with pytest.raises(ValueError, match="no validated launch config"):
        launch_config(90, torch.bfloat16, head_dim)


def test_device_capability_is_one_number_from_the_device(monkeypatch):
    assert device_capability(torch.device("cpu")) is None
    monkeypatch.setattr(triton_configs.torch.cuda, "get_device_capability", lambda device: (8, 9))
    assert device_capability(torch.device("cuda", 0)) == 89


def resources(capability=86, shared=48 * KB, local=0, registers=128, warps=8, tmem=0):
    return KernelResources(
        capability=capability, dtype="float32", head_dim=128, config=LaunchConfig(128, 64, warps, 3),
        registers=registers, local_bytes=local, static_shared_bytes=0,
        dynamic_shared_bytes=shared, tensor_memory_columns=tmem, compile_s=0.0,
    )


def test_a_fitting_kernel_has_no_problems():
    assert resources().problems() == []
    assert resources(shared=99 * KB, registers=255, warps=8).problems() == []


def test_shared_memory_is_held_to_the_architecture_of_the_entry():
    # fp32 at head dim 128 in three 128 x 64 stages: 128 KB, fine on sm_80, not on sm_86.
    assert resources(capability=80, shared=128 * KB).problems() == []
    (problem,) = resources(capability=86, shared=128 * KB).problems()
    assert problem == "128 KB shared memory > sm_86's 99 KB per block"


def test_static_shared_memory_counts_too():
    fits = resources(shared=99 * KB)
    over = KernelResources(**{**fits.__dict__, "static_shared_bytes": 1024})
    assert fits.problems() == [] and len(over.problems()) == 1


def test_spills_registers_and_tensor_memory_are_problems():
    assert resources(local=16).problems() == ["spills 16 bytes per thread to local memory"]
    # 255 registers x 16 warps of 32 threads does not fit a 64K register file.
    assert resources(registers=255, warps=16).problems() == ["255 registers x 512 threads > 65536 per block"]
    assert resources(capability=100, tmem=1024).problems() == ["1024 tensor memory columns > 512"]


def test_resources_round_trip_through_json():
    r = resources(shared=12345, local=8)
    assert KernelResources.from_json(r.to_json()) == r
