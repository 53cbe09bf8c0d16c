"""Every setting that changes what scorer_diagnostics writes, as one record.

Diagnostics are *current* for a category when they were made from its current score files
(files.py) with exactly these settings and this code: a rerun with other settings (say 16
controls per kind after 64) is a fresh run, never the older result under a new name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..selection.rules import SelectionSettings
from .controls import ControlSpec

# Bump when a code change alters what the diagnostics write for the same inputs and settings.
DIAGNOSTICS_REVISION = "2"
REPLICATES = 1000
NATURAL_WINDOWS = 2000


@dataclass(frozen=True)
class DiagnosticsSettings:
    selection: SelectionSettings = field(default_factory=SelectionSettings)  # the settings judged
    controls: ControlSpec = field(default_factory=ControlSpec)
    natural_windows: int = NATURAL_WINDOWS  # natural windows sampled, by hash of data_id
    replicates: int = REPLICATES  # bootstrap replicates over documents
    seed: int = 0  # the document split, the control draws and the bootstrap

    def __post_init__(self) -> None:
        if self.natural_windows < 1 or self.replicates < 1:
            raise ValueError(f"natural_windows and replicates must be >= 1, got {self}")

    def recipe(self) -> dict[str, object]:
        """What the diagnostics record as made with; equal recipes, equal files."""
        return {
            "code": DIAGNOSTICS_REVISION,
            "selection": self.selection.as_dict(),
            "controls_per_kind": self.controls.per_kind,
            "concatenated_pieces": self.controls.pieces,
            "repeated_passage_fraction": self.controls.passage_fraction,
            "natural_windows": self.natural_windows,
            "bootstrap_replicates": self.replicates,
            "seed": self.seed,
        }
