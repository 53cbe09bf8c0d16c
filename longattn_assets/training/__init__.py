"""Kept windows as training data: their exact token ids in the formats trainers read.

inputs.py (what an export reads, checked current), plan.py (which windows, in what order),
ordering.py (that order with bounded memory), mds.py / megatron.py / hf.py (the formats),
export.py (one folder, put in place whole). No Dagster here: the assets (assets/training.py)
and ``longattn export`` call export.py.
"""
