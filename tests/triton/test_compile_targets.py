"""The fused kernel compiles for every architecture of the launch config table, and fits it.

Each entry of LAUNCH_CONFIGS is compiled to a cubin for its architecture exactly as the
scorer launches it (longattn_assets/scoring/triton_targets.py), on this machine without a
GPU; its shared memory must fit the architecture's per-block limit, its registers the
register file, and nothing may spill. Every test runs twice: with the venv's Triton and
with the GPU machine's (conftest.IMAGE_TRITON). The tables of what each entry uses are
printed at the end of the pytest run.
"""

import pytest

pytest.importorskip("triton", reason="Triton is not installed (pip install 'longattn_assets[gpu]')")

from longattn_assets.scoring.triton_configs import ARCHITECTURES, LAUNCH_CONFIGS  # noqa: E402

# A cold compile of the whole table takes 30-170 s of CPU per Triton version (more on a
# loaded machine); Triton's cache makes later runs take seconds.
pytestmark = pytest.mark.timeout(3600)

ENTRIES = sorted(LAUNCH_CONFIGS, key=lambda key: (key[0], str(key[1]), key[2]))


def _name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


@pytest.fixture(scope="module")
def resources(compiled_targets) -> dict:
    return {(r.capability, r.dtype, r.head_dim): r for r in compiled_targets}


def test_every_entry_of_the_table_was_compiled_with_its_config(resources):
    assert set(resources) == {(cap, _name(dtype), head_dim) for cap, dtype, head_dim in LAUNCH_CONFIGS}
    for (cap, dtype, head_dim), config in LAUNCH_CONFIGS.items():
        assert resources[(cap, _name(dtype), head_dim)].config == config


@pytest.mark.parametrize(
    "capability,dtype,head_dim", ENTRIES, ids=[f"sm_{c}-{_name(d)}-{h}" for c, d, h in ENTRIES]
)
def test_entry_fits_its_architecture_without_spills(resources, capability, dtype, head_dim):
    used = resources[(capability, _name(dtype), head_dim)]
    arch = ARCHITECTURES[capability]
    assert used.registers > 0 and used.dynamic_shared_bytes > 0  # a real kernel was read
    assert used.shared_bytes <= arch.shared_memory_per_block
    assert used.local_bytes == 0
    assert used.registers * used.threads <= arch.registers_per_block
    assert used.problems() == []


@pytest.mark.parametrize("capability", [86, 89])
def test_fp32_at_head_dim_128_fits_the_99_kb_of_sm_86_and_sm_89(resources, capability):
    used = resources[(capability, "float32", 128)]
    assert used.shared_bytes <= 99 * 1024 == ARCHITECTURES[capability].shared_memory_per_block
