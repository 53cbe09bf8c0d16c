"""The diagnostics record on synthetic scores whose separation is known."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from longattn_assets.diagnostics.calibration import CalibrationUnavailable, calibrated_settings
from longattn_assets.diagnostics.controls import CONCATENATED, CONTROL_KINDS
from longattn_assets.diagnostics.separation import auc
from longattn_assets.diagnostics.split import EVALUATION, TUNING
from longattn_assets.diagnostics.summary import CALIBRATED, card_section, markdown_table
from longattn_assets.selection.rules import SelectionSettings
from tests.diagnostics.synthetic import HEADS, PER_DOC, case, diagnosed, summarizer


def test_settings_are_never_judged_on_the_documents_they_were_chosen_on():
    """Head 2 separates only in the tuning part's documents: calibration picks it (on the
    tuning part it is near perfect), and the held-out AUC shows it does not carry over."""
    natural, controls, split = case(0, head_shift=True, shift_in=TUNING)
    record = diagnosed(natural, controls, split)
    tuning = record["calibrated"]["tuning"]
    assert record["calibrated"]["settings"]["heads"] == [2] and tuning["chosen"]["auc"] > 0.95
    held_out = record["separation"][CONCATENATED][CALIBRATED]
    assert held_out["low"] < 0.5 < held_out["high"] and held_out["auc"] < 0.7
    assert record["lds_separates_concatenated"] is False
    tuned, judged = (set(sum(record["split"][part], [])) for part in (TUNING, EVALUATION))
    assert tuned and judged and not tuned & judged
    assert record["natural_windows"] == {
        TUNING: PER_DOC * len(tuned),
        EVALUATION: PER_DOC * len(judged),
    }


def test_calibrated_settings_that_separate_held_out_documents_are_named():
    natural, controls, split = case(1, head_shift=True)
    record = diagnosed(natural, controls, split)
    assert record["calibrated"]["settings"]["heads"] == [2]
    given, calibrated = (record["separation"][CONCATENATED][s] for s in ("lds", CALIBRATED))
    assert given["low"] < 0.5 < given["high"]
    assert calibrated["auc"] > 0.95 and calibrated["low"] > 0.5
    assert record["calibrated"]["tuning"]["draws_agree"] is True
    assert record["lds_separates_concatenated"] is True
    advice = record["advice"]
    assert "the paper's settings (every head, alpha 0.5) does not rank" in advice
    assert (
        "heads [2]" in advice
        and "calibrated: true" in advice
        and "longattn select --calibrated" in advice
    )
    assert set(record["calibrated"]["tuning"]["alpha_sweep"]) == {
        "0.0",
        "0.25",
        "0.5",
        "1.0",
        "2.0",
        "4.0",
    }


def test_scores_that_cannot_separate_fail_the_check_with_what_to_try():
    natural, controls, split = case(2)
    record = diagnosed(natural, controls, split)
    assert record["separation"][CONCATENATED]["lds"]["low"] <= 0.5
    assert record["lds_separates_concatenated"] is False
    for hint in ("Neither separates", "larger model", "longer windows", "alpha_sweep"):
        assert hint in record["advice"]


def test_each_held_out_auc_is_the_plain_one_over_pairs_across_halves():
    natural, controls, split = case(3, natural_ds=1.0)
    record = diagnosed(natural, controls, split)
    assert record["lds_separates_concatenated"] is True
    nat_docs = natural.column("doc_id").to_pylist()
    for kind in CONTROL_KINDS:
        wins = pairs = 0.0
        for half in (0, 1):
            nat = [
                i
                for i, d in enumerate(nat_docs)
                if split.part[d] == EVALUATION and split.half[d] == half
            ]
            ctl = [
                i for i, r in enumerate(controls.to_pylist())
                if r["kind"] == kind and r["part"] == EVALUATION and r["half"] == 1 - half
            ]  # fmt: skip
            ds_n, ds_c = natural.column("ds").to_numpy()[nat], controls.column("ds").to_numpy()[ctl]
            wins += auc(ds_n, ds_c) * len(nat) * len(ctl)
            pairs += len(nat) * len(ctl)
        found = record["separation"][kind]
        # the same wins, summed in another order: equal to the last bits but one
        assert found["ds"]["auc"] == pytest.approx(wins / pairs, rel=1e-12)
        assert found["ds"]["low"] <= found["ds"]["auc"] <= found["ds"]["high"]
        assert len(found["ds"]["draws"]) == 2 and found["ds"]["spread"] >= 0
        assert len(record["heads"][kind]["ds"]) == HEADS


def test_share_kept_counts_held_out_controls_at_or_above_the_cut():
    natural, controls, split = case(4, natural_ds=0.5)
    record = diagnosed(natural, controls, split, cut=0.3)
    stats = summarizer(natural)(SelectionSettings()).stats
    for kind in CONTROL_KINDS:
        part = controls.filter(
            pa.compute.and_(
                pa.compute.equal(controls.column("kind"), kind),
                pa.compute.equal(controls.column("part"), EVALUATION),
            )
        )
        lds = (part.column("ds").to_numpy() - stats.ds.mean) / stats.ds.std - 0.5 * (
            (part.column("du").to_numpy() - stats.du.mean) / stats.du.std
        )
        assert record["kept_share"][kind] == np.mean(lds >= 0.3)
    assert record["kept_share"]["natural"] == 0.5
    assert "| concatenated |" in markdown_table(record)


def test_too_few_documents_judge_the_given_settings_on_all_and_offer_no_calibration():
    natural, controls, split = case(5, natural_ds=1.0, docs=5)
    record = diagnosed(natural, controls, split)
    assert record["calibrated"] is None and record["kept_share_calibrated"] is None
    assert record["natural_windows"] == {TUNING: 0, EVALUATION: 5 * PER_DOC}
    assert "No calibrated settings: 5 documents with windows are too few" in record["advice"]
    assert CALIBRATED not in record["separation"][CONCATENATED]
    with pytest.raises(CalibrationUnavailable, match="offers no calibrated settings: 5 documents"):
        calibrated_settings(record, SelectionSettings(), "book")


def test_the_record_is_deterministic_and_the_card_says_which_settings_the_dataset_uses():
    natural, controls, split = case(6, head_shift=True)
    first = diagnosed(natural, controls, split, seed_key="book")
    assert first == diagnosed(natural, controls, split, seed_key="book")
    given = SelectionSettings()
    calibrated = SelectionSettings(heads=(2,), alpha=first["calibrated"]["settings"]["alpha"])
    assert "selected with the paper's settings" in card_section(first, given)
    assert "selected with the calibrated settings" in card_section(first, calibrated)
    assert "Computed for the settings" in card_section(first, SelectionSettings(alpha=3.0))
    assert "Not computed" in card_section(None, given)


def test_a_selection_takes_the_calibrated_heads_and_alpha_or_says_why_not():
    natural, controls, split = case(1, head_shift=True)
    record = {**diagnosed(natural, controls, split), "fingerprint": "dia-test"}
    settings, calibration = calibrated_settings(record, SelectionSettings(value=0.25), "code")
    assert settings.heads == (2,) and settings.alpha == record["calibrated"]["settings"]["alpha"]
    assert settings.value == 0.25  # the rule stays as given
    assert calibration["diagnostics"] == "dia-test" and calibration["heads"] == [2]
    assert (
        calibration["held_out_auc_concatenated"] == record["separation"][CONCATENATED][CALIBRATED]
    )
    assert calibration["tuning_documents"] + calibration["evaluation_documents"] == 16
    refusals = [
        (None, SelectionSettings(), "materialize scorer_diagnostics code first"),
        (record, SelectionSettings(heads=(1,)), "give neither heads nor alpha"),
        (record, SelectionSettings(alpha=1.0), "give neither heads nor alpha"),
        (record, SelectionSettings(normalize="minmax"), "chosen for normalize=zscore"),
    ]
    for found, base, message in refusals:
        with pytest.raises(CalibrationUnavailable, match=message):
            calibrated_settings(found, base, "code")
