"""A run's records: what each field of a step and an epoch record holds, the time to a target, and the plain
dicts checkpoints store, read back by this version whatever fields an earlier or later one wrote."""

import pytest

from vae_lib import EpochRecord, History, StepRecord

TEST = {"total": 0.5, "recon": 0.25, "kl": 125.0, "recon_at_mean": 0.2}


def test_a_step_record_holds_the_fractional_epoch_the_train_means_and_the_test_estimate() -> None:
    record = StepRecord.of(12, 8, 3.5, [0.75, 0.5, 250.0], TEST)
    assert record == StepRecord(
        step=12,
        epoch=1.5,
        seconds=3.5,
        train_total=0.75,
        train_recon=0.5,
        train_kl=250.0,
        test_total=0.5,
        test_recon=0.25,
        test_kl=125.0,
    )


def test_an_epoch_record_holds_the_test_metrics_and_the_number_of_test_images() -> None:
    record = EpochRecord.of(2, 16, 7.0, 1e-3, TEST, 100)
    assert record == EpochRecord(
        epoch=2,
        step=16,
        seconds=7.0,
        lr=1e-3,
        test_total=0.5,
        test_recon=0.25,
        test_kl=125.0,
        test_recon_at_mean=0.2,
        test_images=100,
    )


def _epoch(epoch: int, seconds: float, test_recon: float) -> EpochRecord:
    return EpochRecord(epoch, 8 * epoch, seconds, 1e-3, test_recon + 0.1, test_recon, 10.0, test_recon)


def test_the_seconds_to_a_target_are_those_of_the_first_epoch_at_or_below_it() -> None:
    history = History(epochs=[_epoch(1, 10.0, 0.09), _epoch(2, 20.0, 0.08), _epoch(3, 30.0, 0.07)])
    assert history.seconds_to_target(0.08) == 20.0  # reached exactly at epoch 2
    assert history.seconds_to_target(0.085) == 20.0  # and not again at epoch 3
    assert history.seconds_to_target(0.5) == 10.0
    assert history.seconds_to_target(0.06) is None


def test_the_stored_dicts_read_back_to_the_same_history() -> None:
    history = History([StepRecord.of(4, 8, 1.0, [0.75, 0.5, 250.0], TEST)], [_epoch(1, 2.0, 0.09)])
    stored = history.to_dict()
    assert stored["steps"][0]["epoch"] == 0.5 and stored["epochs"][0]["test_recon"] == 0.09
    assert set(stored) == {"steps", "epochs"} and History.from_dict(stored) == history


def test_a_stored_history_of_another_version_reads_its_known_fields_and_defaults_the_missing_ones() -> None:
    stored = History([], [_epoch(1, 2.0, 0.09)]).to_dict()
    del stored["epochs"][0]["test_images"]  # written before the field existed
    stored["epochs"][0]["peak_memory"] = 123  # written by a later version
    record = History.from_dict(stored).epochs[0]
    assert record.test_images is None and record == _epoch(1, 2.0, 0.09)
    del stored["epochs"][0]["lr"]
    with pytest.raises(TypeError):  # a field a record cannot do without is not made up
        History.from_dict(stored)


def test_a_history_shows_as_one_line_with_its_length_and_last_test_figures() -> None:
    # A notebook cell ending in trainer.finish() shows this: the dataclass's own repr printed every record.
    steps = [StepRecord(50 * k, k / 6, 2.5 * k, 0.2, 0.19, 9.0, 0.21, 0.2, 9.5) for k in range(1, 1001)]
    epochs = [
        EpochRecord(1, 300, 18.4, 1e-3, 0.1205, 0.1098, 10.71, 0.1094, 10_000),
        EpochRecord(2, 600, 36.71, 4e-5, 0.110278, 0.101810, 8.4672, 0.1012, 2_000),
    ]
    shown = repr(History(steps, epochs))
    assert shown == (
        "History(600 steps, 2 epochs in 36.7 s; after epoch 2: test total 0.1103, reconstruction 0.1018, KL 8.47 "
        "on 2,000 test images; records in .steps (1000) and .epochs (2))"
    )
    assert repr(History(steps[:3])) == (
        "History(150 steps in 7.5 s; after step 150: test total 0.2100, reconstruction 0.2000, KL 9.50 on a slice of "
        "the test images; records in .steps (3) and .epochs (0))"
    )
    assert repr(History()) == "History(no records yet)"
    one_epoch = repr(History([], [EpochRecord(1, 300, 18.4, 1e-3, 0.12, 0.11, 10.7, 0.109)]))
    assert one_epoch.startswith("History(300 steps, 1 epoch in 18.4 s;") and "on every test image;" in one_epoch
