"""LongAttn data selection as Dagster assets."""

from .numerics import pin_cpu_capability

pin_cpu_capability()
