"""The scorer's statistics kernel: Triton where it compiles, launches and agrees, else torch with one warning.

Triton runs here through its interpreter (conftest.py); failures to compile or launch on
a GPU are stood in for by replacing the fused kernel with one that raises what Triton
raises there.
"""

import dataclasses
import logging
import sys

import pytest

pytest.importorskip("triton", reason="Triton is not installed (pip install 'longattn_assets[gpu]')")

import torch  # noqa: E402
from triton.runtime.errors import OutOfResources  # noqa: E402

from longattn_assets.scoring import kernel_choice, triton_statistics  # noqa: E402
from longattn_assets.scoring.kernel_choice import choose_statistics_kernel  # noqa: E402
from longattn_assets.scoring.statistics import long_range_statistics  # noqa: E402
from longattn_assets.scoring.triton_configs import (  # noqa: E402
    LAUNCH_CONFIGS,
    PORTABLE_CAPABILITY,
    TORCH_ONLY,
)

SHAPE = {"num_heads": 4, "num_kv_heads": 2, "head_dim": 64, "block_size": 64}
CPU = torch.device("cpu")


def choose(requested="triton", device=CPU, **shape):
    return choose_statistics_kernel(requested, device, torch.float32, **{**SHAPE, **shape})


def window():
    gen = torch.Generator().manual_seed(1)
    return 2 * torch.randn(4, 150, 64, generator=gen), 2 * torch.randn(2, 150, 64, generator=gen)


def warnings_in(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def out_of_shared_memory(*args, **kwargs):
    raise OutOfResources(131072, 101376, "shared memory")


def test_triton_is_chosen_where_it_runs_and_agrees(caplog):
    with caplog.at_level(logging.INFO, logger="longattn_assets"):
        choice = choose()
    config = LAUNCH_CONFIGS[(PORTABLE_CAPABILITY, torch.float32, 64)]
    assert choice.name == "triton"
    assert choice.description == f"triton {config} on Triton's interpreter"
    assert warnings_in(caplog) == []
    q, k = window()
    torch.testing.assert_close(choice.compute(q, k), long_range_statistics(q, k), rtol=1e-4, atol=0.0)


def test_the_launch_config_is_looked_up_for_the_device(monkeypatch):
    launched = []

    def spy(q, k, **config):
        launched.append(config)
        return fused(q, k, **config)

    fused = triton_statistics.long_range_statistics_triton
    monkeypatch.setattr(triton_statistics, "long_range_statistics_triton", spy)
    monkeypatch.setattr(kernel_choice, "device_capability", lambda device: 90)
    choice = choose(head_dim=64)
    want = LAUNCH_CONFIGS[(90, torch.float32, 64)]
    assert choice.description == f"triton {want} on sm_90"
    assert launched == [dataclasses.asdict(want)]


def test_a_combination_the_table_leaves_to_torch_falls_back_with_the_reason(monkeypatch, caplog):
    monkeypatch.setattr(kernel_choice, "device_capability", lambda device: 90)
    with caplog.at_level(logging.WARNING, logger="longattn_assets"):
        assert choose(head_dim=128).name == "torch"
    (warning,) = warnings_in(caplog)
    assert TORCH_ONLY[(90, torch.float32, 128)] in warning


def test_a_kernel_that_fails_to_launch_falls_back_to_torch_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(triton_statistics, "long_range_statistics_triton", out_of_shared_memory)
    with caplog.at_level(logging.INFO, logger="longattn_assets"):
        choice = choose()
    assert (choice.name, choice.description) == ("torch", "torch")
    (warning,) = warnings_in(caplog)
    assert "OutOfResources: out of resource: shared memory" in warning
    assert "scoring with the torch kernel" in warning
    q, k = window()
    got, want = choice.compute(q, k), long_range_statistics(q, k, block_size=SHAPE["block_size"])
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


def test_a_kernel_that_disagrees_with_torch_falls_back(monkeypatch, caplog):
    fused = triton_statistics.long_range_statistics_triton

    def off_by_one_percent(q, k, **config):
        ds, du = fused(q, k, **config)
        return ds * 1.01, du

    monkeypatch.setattr(triton_statistics, "long_range_statistics_triton", off_by_one_percent)
    with caplog.at_level(logging.WARNING, logger="longattn_assets"):
        assert choose().name == "torch"
    (warning,) = warnings_in(caplog)
    assert "ds differs from the torch kernel's by 1.0e-02 relative" in warning


def test_a_head_dim_without_a_validated_config_falls_back(caplog):
    # Smaller heads are zero-padded to a head dim of the table (test_family_kernels.py);
    # nothing in the table holds 256.
    with caplog.at_level(logging.WARNING, logger="longattn_assets"):
        assert choose(head_dim=256).name == "torch"
    (warning,) = warnings_in(caplog)
    assert "no validated launch config" in warning


def test_auto_on_cpu_is_torch_without_trying_triton(monkeypatch, caplog):
    monkeypatch.setattr(triton_statistics, "long_range_statistics_triton", out_of_shared_memory)
    with caplog.at_level(logging.WARNING, logger="longattn_assets"):
        assert choose("auto").name == "torch"
    assert warnings_in(caplog) == []


def test_without_triton_auto_takes_torch_and_an_explicit_request_fails(monkeypatch, caplog):
    # A None entry in sys.modules makes the import raise ImportError, as without the gpu extra.
    monkeypatch.setitem(sys.modules, "longattn_assets.scoring.triton_statistics", None)
    with caplog.at_level(logging.WARNING, logger="longattn_assets"):
        assert choose("auto", device=torch.device("cuda")).name == "torch"
    assert warnings_in(caplog) == []
    with pytest.raises(ImportError):
        choose("triton")
