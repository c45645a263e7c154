import errno
import io
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vae_lib import CheckpointError, History, TrainConfig, Trainer, load_model, read_checkpoint
from vae_lib.core.checkpoint import continued_config, export_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_train, small_test) -> Trainer:
    run_dir = tmp_path_factory.mktemp("run")
    trainer = Trainer(
        TrainConfig(latent_dim=2, log_every=4, step_test_images=64),
        train_data=small_train,
        test_data=small_test,
        run_dir=run_dir,
        device="cpu",
        progress=False,
    )
    trainer.fit(1)
    return trainer


def test_load_model_rebuilds_the_model_from_the_file_alone(trained: Trainer, small_test) -> None:
    model = load_model(trained.run_folder.checkpoint)
    assert not model.training and model.latent_dim == 2
    images = small_test.images[:16].float().div(127.5).sub(1).unsqueeze(1)
    trained.model.eval()
    assert torch.equal(model.encode(images)[0], trained.model.encode(images)[0])
    assert torch.equal(model.decode(torch.zeros(3, 2)), trained.model.decode(torch.zeros(3, 2)))


def test_a_run_folder_holding_only_kept_epochs_names_them(trained: Trainer, tmp_path: Path) -> None:
    kept = tmp_path / "run"
    kept.mkdir()
    for epoch in (1, 2):
        (kept / f"epoch_{epoch:03d}.pt").write_bytes(trained.run_folder.checkpoint.read_bytes())
    with pytest.raises(CheckpointError) as refusal:
        load_model(kept)
    assert str(refusal.value) == (
        f"no checkpoint at {kept}: it holds no checkpoint.pt, but the kept epochs epoch_001.pt, epoch_002.pt: pass one "
        "of them"
    )
    assert load_model(kept / "epoch_001.pt").latent_dim == 2  # as it says


def _hand_made(tmp_path: Path, **changes: object) -> Path:
    """Write a small model's checkpoint with `changes` to its contents, its checksum made for them (as a program
    other than vae_lib would write it): only what the contents say can refuse it."""
    config = TrainConfig(widths=(4, 8, 8, 8))
    state = {"config": config.to_dict(), "model": config.build_model().state_dict(), "epoch": 0, "step": 0}
    return save_checkpoint({**state, "history": History().to_dict(), **changes}, tmp_path / "hand_made.pt")


def test_weights_that_do_not_fit_their_config_are_refused_in_one_line(tmp_path: Path) -> None:
    wider = TrainConfig(widths=(4, 8, 8, 8), latent_dim=3).to_dict()
    with pytest.raises(CheckpointError) as refusal:
        load_model(_hand_made(tmp_path, config=wider))
    assert str(refusal.value) == (
        f"the weights in {tmp_path / 'hand_made.pt'} do not fit the model its config describes (size mismatch for "
        "to_latent.weight: copying a param with shape torch.Size([4, 392]) from checkpoint, the shape in current "
        "model is torch.Size([6, 392]).; size mismatch for to_latent.bias: copying a param with shape "
        "torch.Size([4]) from checkpoint, the shape in current model is torch.Size([6]).; size mismatch for "
        "from_latent.weight: copying a param with shape torch.Size([392, 2]) from checkpoint, the shape in current "
        "model is torch.Size([392, 3]).): the file was changed after vae_lib wrote it; use a checkpoint.pt written "
        "by vae_lib"
    )


@pytest.mark.parametrize("key, value", [("config", [1, 2]), ("model", "weights"), ("history", None)])
def test_a_config_weights_or_history_that_is_not_a_table_is_refused(tmp_path: Path, key: str, value) -> None:
    path = _hand_made(tmp_path, **{key: value})
    for read in (read_checkpoint, load_model):  # a TypeError or AttributeError traceback before
        message = rf"is not a usable vae_lib checkpoint: its {key} is a {type(value).__name__}, not the table vae_lib"
        with pytest.raises(CheckpointError, match=message):
            read(path)


def test_a_checkpoint_for_another_latent_size_is_refused(trained: Trainer) -> None:
    with pytest.raises(CheckpointError, match="holds a 2-D model, not the 8-D one"):
        load_model(trained.run_folder.checkpoint, latent_dim=8)


def test_weights_that_do_not_fit_the_config_are_refused(trained: Trainer, tmp_path: Path) -> None:
    state = torch.load(trained.run_folder.checkpoint, weights_only=True)
    state["config"]["latent_dim"] = 8
    save_checkpoint(state, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "mixed.pt")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint at all", "not the zip archive torch.save writes"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "not the zip archive torch.save writes"),
        (None, "is a torch file but not a vae_lib checkpoint"),
    ],
)
def test_files_that_are_not_checkpoints_are_refused(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "file.pt"
    if content is None:
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


def test_a_pickle_of_code_is_refused_without_advice_to_load_it_unsafely(tmp_path: Path) -> None:
    path = tmp_path / "code.pt"
    torch.save({"call": print}, path)  # a zip archive like any torch file, whose pickle calls code
    with pytest.raises(CheckpointError, match="not the tensors and plain values") as refusal:
        load_model(path)
    assert "weights_only" not in str(refusal.value)
    assert "use a checkpoint.pt written by vae_lib" in str(refusal.value)


def test_a_truncated_checkpoint_is_refused(trained: Trainer, tmp_path: Path) -> None:
    data = (trained.run_folder.checkpoint).read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(tmp_path / "cut.pt")


def test_a_run_folder_stands_for_its_checkpoint(trained: Trainer) -> None:
    folder = trained.run_folder.checkpoint.parent
    assert read_checkpoint(folder)["step"] == read_checkpoint(trained.run_folder.checkpoint)["step"] > 0


def test_a_missing_checkpoint_says_to_train_first(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="train a model first"):
        load_model(tmp_path / "nothing.pt")


def _disk_full_after(size: int) -> Callable:
    """Return a torch.save that stops with ENOSPC after `size` bytes, as a full disk does."""
    real_save = torch.save

    class FullDisk(io.RawIOBase):
        def __init__(self, stream) -> None:
            self.stream, self.written = stream, 0

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            if self.written + len(data) > size:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written += len(data)
            return self.stream.write(data)

    return lambda state, stream: real_save(state, FullDisk(stream))


def test_a_full_disk_during_a_save_is_one_clear_error_and_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"epoch": 1}, path)
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", _disk_full_after(1000))
    with pytest.raises(CheckpointError) as failure:
        save_checkpoint({"epoch": 2, "weights": torch.zeros(10_000)}, path)
    assert str(failure.value) == (
        f"could not write {path} (No space left on device); nothing was overwritten: free some space or fix the "
        "folder, then run again"
    )
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_an_exported_checkpoint_without_optimizer_cannot_resume(
    trained: Trainer, tmp_path: Path, small_train, small_test
) -> None:
    state = torch.load(trained.run_folder.checkpoint, weights_only=True)
    del state["optimizer"]
    save_checkpoint(state, tmp_path / "exported.pt")
    assert load_model(tmp_path / "exported.pt").latent_dim == 2
    with pytest.raises(CheckpointError, match="without optimizer state"):
        Trainer.resume(tmp_path / "exported.pt", train_data=small_train, test_data=small_test, progress=False)


def test_a_flipped_exponent_bit_is_caught_by_the_checksum(trained: Trainer, tmp_path: Path, flip_exponent_bit) -> None:
    data = trained.run_folder.checkpoint.read_bytes()
    weight = trained.model.to_latent.weight.detach()
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(flip_exponent_bit(data, weight))
    stored = torch.load(corrupt, weights_only=True)["model"]["to_latent.weight"]
    assert abs(stored[0, 0].item()) > 1e30 and torch.isfinite(stored).all()  # torch.load alone sees nothing wrong
    with pytest.raises(CheckpointError) as failure:
        load_model(corrupt)
    assert str(failure.value).startswith(f"{corrupt} is corrupt: its contents no longer match the checksum")
    assert "\n" not in str(failure.value)


def test_an_exported_checkpoint_without_checksum_is_refused(trained: Trainer, tmp_path: Path) -> None:
    state = torch.load(trained.run_folder.checkpoint, weights_only=True)
    for key in ("optimizer", "rng", "checksum"):
        del state[key]
    torch.save(state, tmp_path / "unchecked.pt")
    with pytest.raises(CheckpointError, match="unchecked.pt is an exported checkpoint without a checksum"):
        load_model(tmp_path / "unchecked.pt")


def test_a_training_checkpoint_of_an_earlier_version_without_checksum_loads_if_its_weights_are_finite(
    trained: Trainer, tmp_path: Path
) -> None:
    state = torch.load(trained.run_folder.checkpoint, weights_only=True)
    del state["checksum"]
    torch.save(state, tmp_path / "earlier.pt")
    assert torch.equal(load_model(tmp_path / "earlier.pt").to_latent.weight, trained.model.to_latent.weight)
    state["model"]["to_latent.weight"][0, 0] = float("inf")
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="broken.pt holds NaN or infinite weights \\(to_latent.weight\\)"):
        load_model(tmp_path / "broken.pt")


def test_an_empty_checkpoint_is_named_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.pt").touch()
    with pytest.raises(CheckpointError) as failure:
        load_model(tmp_path / "checkpoint.pt")
    assert str(failure.value) == (
        f"{tmp_path / 'checkpoint.pt'} is empty (0 bytes): delete it and retrain, or use another checkpoint"
    )


def test_an_export_keeps_config_weights_counters_and_history_and_leaves_out_the_training_state(
    trained: Trainer, tmp_path: Path
) -> None:
    source = read_checkpoint(trained.run_folder.checkpoint)
    assert export_checkpoint(trained.run_folder.checkpoint, tmp_path / "shared.pt") == tmp_path / "shared.pt"
    stored = torch.load(tmp_path / "shared.pt", weights_only=True)
    kept = {"config", "model", "epoch", "step", "train_seconds", "history"}
    assert set(stored) == {"kind", "checksum", *kept}  # no optimizer, no rng
    exported = read_checkpoint(tmp_path / "shared.pt")  # its checksum holds
    for key in kept - {"model"}:
        assert exported[key] == source[key], key
    assert exported["epoch"] == 1 and len(exported["history"]["epochs"]) == 1
    for name, tensor in source["model"].items():
        assert torch.equal(exported["model"][name], tensor), name


def test_a_corrupt_checkpoint_is_not_exported(trained: Trainer, tmp_path: Path, flip_exponent_bit) -> None:
    corrupt, weight = tmp_path / "corrupt.pt", trained.model.to_latent.weight.detach()
    corrupt.write_bytes(flip_exponent_bit(trained.run_folder.checkpoint.read_bytes(), weight))
    with pytest.raises(CheckpointError, match="corrupt.pt is corrupt"):
        export_checkpoint(corrupt, tmp_path / "shared.pt")
    assert not (tmp_path / "shared.pt").exists()  # a fresh checksum would have vouched for the changed weight


def test_continuing_applies_the_resumable_settings_and_refuses_the_others_by_name(trained: Trainer) -> None:
    checkpoint, config = trained.run_folder.checkpoint, trained.config
    longer = replace(config, epochs=5, log_every=2, keep_epochs=(5,))
    assert continued_config(checkpoint, longer) == (config, longer)
    with pytest.raises(CheckpointError, match=r"trained with other settings \(learning_rate: 0.001 vs 0.005\)"):
        continued_config(checkpoint, replace(config, learning_rate=5e-3))
    with pytest.raises(CheckpointError, match=r"belongs to another model \(latent_dim: 2 vs 8\): choose"):
        continued_config(checkpoint, replace(config, latent_dim=8, learning_rate=5e-3))


def test_a_damaged_checkpoint_beside_kept_epochs_names_them_and_a_folder_in_its_place_is_named(
    trained: Trainer, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    whole = trained.run_folder.checkpoint.read_bytes()
    (run / "epoch_001.pt").write_bytes(whole)
    (run / "checkpoint.pt").write_bytes(whole[: len(whole) // 2])  # a copy cut short
    with pytest.raises(CheckpointError, match=r"keeps epoch_001.pt: to go on from the last, copy .*epoch_001.pt to"):
        read_checkpoint(run / "checkpoint.pt")
    (run / "checkpoint.pt").unlink()
    (run / "checkpoint.pt").mkdir()
    with pytest.raises(CheckpointError, match="a folder where a checkpoint file belongs: move it out of the way"):
        read_checkpoint(run / "checkpoint.pt")


def test_load_model_given_a_latent_size_that_is_not_a_whole_number_says_so(trained: Trainer) -> None:
    with pytest.raises(ValueError, match="latent_dim must be a whole number of at least 1, got '2'"):
        load_model(trained.run_folder.checkpoint, latent_dim="2")  # "holds a 2-D model, not the 2-D one" before
    assert load_model(trained.run_folder.checkpoint, latent_dim=2).latent_dim == 2
