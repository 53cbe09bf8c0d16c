"""Token windows out of a windowed_chunks ``token_ids`` column, as the scorer reads them.

Kept apart from windows_file.py (which needs the corpus readers for provenance) so that
the GPU check (benchmarks/gpu_check.py) reads windows exactly as scoring does on a machine
that has only torch, Triton, transformers and pyarrow.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def token_windows(column: pa.ChunkedArray) -> list[np.ndarray]:
    """Each row's token ids as a numpy view, without going through Python lists."""
    windows = []
    for chunk in column.chunks:
        offsets = chunk.offsets.to_numpy()
        values = chunk.values.to_numpy(zero_copy_only=False)
        windows.extend(values[offsets[i] : offsets[i + 1]] for i in range(len(chunk)))
    return windows
