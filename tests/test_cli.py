import errno
import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vae_lib import History, TrainConfig, Trainer, load_model, read_checkpoint
from vae_lib.core.checkpoint import save_checkpoint
from vae_lib.core.run_folder import RunFolder
from vae_lib.core.settings import REPO_ROOT
from vae_lib.tools import cli
from vae_lib.tools.cli import build_parser, main

SMALL = ["--train-subset", "256", "--test-subset", "128"]
NARROW = ["--widths", "4", "8", "8", "8"]


@pytest.fixture
def untrained_checkpoint(tmp_path: Path) -> Path:
    config = TrainConfig(widths=(4, 8, 8, 8))
    state = {"config": config.to_dict(), "model": config.build_model().state_dict(), "epoch": 0, "step": 0}
    return save_checkpoint({**state, "history": History().to_dict()}, tmp_path / "untrained.pt")


def test_the_help_names_every_command(capsys) -> None:
    commands = next(action for action in build_parser()._actions if action.dest == "command").choices
    assert len(commands) >= 9
    usage_line = " | ".join(commands)
    assert usage_line in " ".join(cli.__doc__.split())
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "each command's --help says more" in " ".join(capsys.readouterr().out.split())


def test_every_option_of_every_command_says_what_it_does() -> None:
    commands = next(action for action in build_parser()._actions if action.dest == "command").choices
    silent = [
        f"{name} {action.option_strings[-1]}"
        for name, command in commands.items()
        for action in command._actions
        if action.option_strings and not action.help
    ]
    assert len(commands) >= 9 and not silent, f"options without a help text: {silent}"


def readme_code_lines() -> list[str]:
    """Return the lines of the README's code blocks (fenced, or indented by four spaces after a blank line), a line
    continued with a backslash joined to the next."""
    readme = (REPO_ROOT / "README.md").read_text().replace("\\\n", " ")
    fenced = re.findall(r"^```[a-z]*\n(.*?)^```", readme, flags=re.M | re.S)
    indented = re.findall(r"(?<=\n\n)((?: {4}.*\n)+)", readme)
    return "\n".join(fenced + indented).splitlines()


def test_every_command_the_readme_shows_is_one_the_parser_and_the_makefile_take() -> None:
    """A renamed option or make target would leave the README's commands failing for whoever copies them."""
    commands, targets = [], []
    for line in readme_code_lines():
        for command in line.split("#")[0].split("&&"):
            words = command.split()
            if words[:1] == [".venv/bin/python"]:
                words[0] = "python"
            if words[:3] == ["python", "-m", "vae_lib"] and "--help" not in words:
                commands.append(shlex.split(" ".join(words[3:])))
            elif words[:1] == ["make"]:
                targets += [word for word in words[1:] if "=" not in word]
    refused = []
    for arguments in commands:
        try:
            build_parser().parse_args(arguments)
        except SystemExit:
            refused.append(" ".join(arguments))
    makefile_targets = set(re.findall(r"^([a-z-]+):", (REPO_ROOT / "Makefile").read_text(), flags=re.M))
    unknown = sorted(set(targets) - makefile_targets)
    assert len(commands) >= 12 and len(targets) >= 6, (commands, targets)
    assert not refused, f"README commands the parser refuses: {refused}"
    assert not unknown, f"make targets the README names and the Makefile lacks: {unknown}"


def test_one_epoch_cli_run_writes_a_checkpoint_load_model_reads(tmp_path: Path, capsys) -> None:
    out = tmp_path / "2d"
    assert main(["train", "--latent-dim", "2", "--epochs", "1", "--out", str(out), "--device", "cpu", *SMALL]) == 0
    assert "epoch   1/1  test total" in capsys.readouterr().out
    model = load_model(out / "checkpoint.pt")
    assert model.latent_dim == 2
    assert read_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert main(["evaluate", str(out / "checkpoint.pt")]) == 0
    printed = capsys.readouterr().out
    assert "10000 mnist test images" in printed and "test recon" in printed and "test recon_at_mean" in printed


def test_rerunning_train_resumes_to_the_total_epoch_count(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    arguments = ["train", "--epochs", "1", "--out", str(out), *SMALL]
    assert main(arguments) == 0
    arguments[2] = "2"
    assert main(arguments) == 0
    assert "resuming" in capsys.readouterr().out
    assert read_checkpoint(out / "checkpoint.pt")["epoch"] == 2


def test_a_folder_holding_another_model_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), *SMALL]) == 0
    assert main(["train", "--latent-dim", "8", "--epochs", "2", "--out", str(out), *SMALL]) == 2
    assert "belongs to another model (latent_dim: 2 vs 8)" in capsys.readouterr().err
    assert read_checkpoint(out / "checkpoint.pt")["epoch"] == 1


def test_widths_set_the_channel_counts_and_a_run_of_other_widths_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "narrow"
    assert main(["train", "--widths", "4", "8", "8", "12", "--epochs", "1", "--out", str(out), *SMALL]) == 0
    model = load_model(out / "checkpoint.pt")
    assert model.widths == (4, 8, 8, 12)
    assert model.encoder[0][0].out_channels == 4 and model.decoder[2][0].out_channels == 4
    assert model.to_latent.in_features == 12 * 7 * 7
    assert main(["train", "--epochs", "2", "--out", str(out), *SMALL]) == 2
    assert "belongs to another model (widths: (4, 8, 8, 12) vs (16, 32, 64, 128))" in capsys.readouterr().err
    assert read_checkpoint(out / "checkpoint.pt")["epoch"] == 1


def test_widths_other_than_four_positive_integers_are_refused_by_the_parser(tmp_path: Path, capsys) -> None:
    for widths in (["8", "8", "8"], ["8", "8", "0", "8"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", "--widths", *widths, "--out", str(tmp_path)])
        assert exit_info.value.code == 2
    assert "must be a positive integer, got 0" in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_negative_epoch_count_is_refused_by_the_parser(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--epochs", "-3", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "must be a positive integer, got -3" in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("alpha", ["-1", "0", "nan", "inf"])
def test_an_alpha_that_is_not_positive_is_refused(tmp_path: Path, capsys, alpha: str) -> None:
    assert main(["train", "--alpha", alpha, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "alpha weights the KL term and must be > 0" in error
    assert "use a small alpha such as 1e-5" in error
    assert not (tmp_path / "checkpoint.pt").exists()


def test_evaluating_a_non_checkpoint_fails_clearly(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pt"
    bogus.write_text("hello")
    result = subprocess.run([sys.executable, "-m", "vae_lib", "evaluate", str(bogus)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "is not a vae_lib checkpoint" in result.stderr


def test_the_profile_of_an_epoch_accounts_for_its_time_by_part(capsys) -> None:
    from vae_lib.tools.benchmark import STEP_PARTS, profile_epoch

    figures = profile_epoch(print, "2d-fast", steps=8)
    printed = capsys.readouterr().out
    assert "one epoch of the 2d-fast recipe (8 steps" in printed and "of a " in printed and "matmul's" in printed
    parts = ["batch", "average", "test", "save", "outside"] + [part for part, _ in STEP_PARTS]
    accounted = sum(figures[part] for part in parts)
    # The parts' self times add up to the epoch's wall-clock time, less what the profiler did not see.
    assert 0.7 * figures["epoch_seconds"] < accounted <= figures["epoch_seconds"] * 1.01
    assert figures["convolutions, backward"] > figures["convolutions, forward"] > 0  # backward is twice the work
    assert figures["optimizer (Adam step, zero_grad)"] > 0 and figures["test"] > 0 and figures["batch"] > 0
    assert figures["conv_linear_gflops"] > 0 and figures["matmul_gflops"] > 0
    # The gap to the matmul's peak: the layers' time at that peak and the three parts of the rest make the epoch.
    gap = ["at_matmul_peak", "gap_conv_linear_below_peak", "gap_other_step_ops", "gap_outside_step"]
    assert sum(figures[part] for part in gap) == pytest.approx(figures["epoch_seconds"])
    assert all(figures[part] > 0 for part in gap)
    assert figures["at_matmul_peak"] == pytest.approx(
        figures["conv_linear_gflops"]
        / figures["matmul_gflops"]
        * (figures["convolutions, forward"] + figures["convolutions, backward"] + figures["linear layers"])
    )
    assert "gap: the same layers running below that peak" in printed


def test_benchmark_prints_every_figure(capsys) -> None:
    from vae_lib import VAE
    from vae_lib.tools.benchmark import run_benchmark, training_gflop_per_image

    # forward multiply-adds counted by hand: convs 5,531,904 + transposed convs 6,936,832 + linear layers 37,632;
    # 2 FLOP each, backward twice the forward: 0.0750 GFLOP per image, the figure DESIGN.md gives
    assert training_gflop_per_image(VAE(latent_dim=2)) == pytest.approx(6 * 12_506_368 / 1e9)
    figures = run_benchmark(print, steps=20, video_frames=10, explorer_updates=20)
    printed = capsys.readouterr().out
    for phrase in (
        "CPU: ",
        "native bf16: ",
        "matmul: fp32 ",
        "seconds per epoch",
        "samples per second",
        "channels-last kept across the flatten: a step takes x",
        "freed memory kept by malloc (keep_freed_memory): a step takes x",
        "% of the fp32 one",
        "timing 20 training steps in fp32",
        "snapshots every 200 steps (2 in a run of 20 steps, the first and the epoch's end included)",
        "10-frame mp4",
        "explorer slider update",
        "drawing pad, stroke end to every view updated",
    ):
        assert phrase in printed
    assert figures["samples_per_second"] > 0 and 0 < figures["fraction_of_matmul"] < 2
    # a figure measured, not a speed target: a bound on the ratio fails whenever other work shares the machine
    assert math.isfinite(figures["snapshot_time_ratio"]) and figures["snapshot_time_ratio"] > 0
    assert figures["explorer_8d_p95_ms"] > 0
    assert 0 < figures["drawing_pad_median_ms"] <= figures["drawing_pad_p95_ms"]
    assert figures["drawing_pad_updates"] == 20 and figures["snapshots_per_run"] == 2
    for ratio in (
        "layout_step_ratio",
        "fp32_layout_step_ratio",
        "kept_memory_step_ratio",
        "fp32_kept_memory_step_ratio",
    ):
        assert math.isfinite(figures[ratio]) and figures[ratio] > 0  # measured, not bounded: see snapshot_time_ratio
    assert figures["kept_memory_page_faults"] < figures["returned_memory_page_faults"] / 10


def test_an_out_naming_a_file_is_refused_before_training(tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert main(["train", "--epochs", "1", "--out", str(notes), *SMALL, *NARROW]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {notes} is a file, not a run folder: choose a folder for the run\n"
    assert captured.out == "" and notes.read_text() == "keep me"


def test_a_read_only_out_is_refused_before_training(tmp_path: Path, capsys, monkeypatch) -> None:
    out, real_open = tmp_path / "run", os.open

    def read_only_open(path, flags, *mode) -> int:
        if Path(path).parent == out:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *mode)

    monkeypatch.setattr(os, "open", read_only_open)  # root ignores permission bits, so a read-only mount is faked
    assert main(["train", "--epochs", "1", "--out", str(out), *SMALL, *NARROW]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err
        == f"error: cannot write to the run folder {out} (Read-only file system): choose a writable folder\n"
    )
    assert captured.out == ""


def test_a_full_disk_during_training_is_one_error_line_and_leaves_no_temporary_file(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    def full_disk(state, stream) -> None:
        stream.write(b"the first bytes")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), *SMALL, *NARROW]) == 2
    error = capsys.readouterr().err
    assert error == (
        f"error: could not write {out / 'checkpoint.pt'} (No space left on device); nothing was overwritten: "
        "free some space or fix the folder, then run again\n"
    )
    assert sorted(path.name for path in out.iterdir()) == []  # no checkpoint, no temporary file, no lock
    assert not RunFolder(out).partial_files()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["train", "--device", "tpu"], "error: unsupported device 'tpu': use one of cuda, mps, cpu"),
        (["train", "--device", "meta"], "error: unsupported device 'meta': use one of cuda, mps, cpu"),
        (["evaluate", "{checkpoint}", "--device", "{absent_gpu}"], "error: device '{absent_gpu}' was asked for"),
        (["train", "--device", ""], "error: the device is empty: name one (cpu, cuda, mps) or leave it out"),
    ],
)
def test_a_device_this_machine_cannot_use_is_one_error_line(
    tmp_path: Path, capsys, untrained_checkpoint: Path, command: list[str], message: str
) -> None:
    absent_gpu = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    values = {"checkpoint": untrained_checkpoint, "absent_gpu": absent_gpu}
    command = [part.format(**values) for part in command]
    if command[0] == "train":
        command += ["--epochs", "1", "--out", str(tmp_path / "run"), *SMALL, *NARROW]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.startswith(message.format(**values)) and error.count("\n") == 1
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_evaluating_an_empty_checkpoint_is_one_error_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "checkpoint.pt").touch()
    assert main(["evaluate", str(tmp_path / "checkpoint.pt")]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'checkpoint.pt'} is empty (0 bytes): delete it and retrain, or use another checkpoint\n"
    )


def test_train_says_its_numerics_and_which_epochs_were_evaluated_on_part_of_the_test_set(tmp_path, capsys) -> None:
    options = ["--epochs", "2", "--epoch-test-images", "100", "--precision", "fp32"]
    assert main(["train", *options, "--out", str(tmp_path / "run"), *SMALL, *NARROW]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("training a 2-D VAE") and " in fp32 (--precision)" in line for line in lines)
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 2
    assert "on the first 100 test images" in epochs[0] and "test images" not in epochs[1]


@pytest.mark.parametrize("samples", ["5001", "100000000"])
def test_more_importance_samples_than_the_largest_printed_k_are_refused_by_the_parser(
    untrained_checkpoint: Path, capsys, samples: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(untrained_checkpoint), "--log-likelihood", "2", "--samples", samples])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert f"argument --samples: must be at most 5000, got {samples}: the bounds are printed for k up to 5000" in (
        captured.err
    )
    assert captured.out == ""


@pytest.mark.parametrize(("option", "value"), [("--samples", "10"), ("--workers", "2"), ("--bounds-file", "bounds.pt")])
def test_an_option_of_log_likelihood_without_it_is_refused_by_the_parser(
    untrained_checkpoint: Path, capsys, option: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(untrained_checkpoint), option, value])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert f"{option} only applies to --log-likelihood IMAGES: add it, or leave {option} out" in captured.err
    assert captured.out == ""


def test_more_log_likelihood_images_than_the_test_set_has_are_said_to_be_cut(
    untrained_checkpoint: Path, capsys, monkeypatch
) -> None:
    from vae_lib.tools import cli

    bounded = []
    monkeypatch.setattr(
        cli, "_print_log_likelihood", lambda model, config, images, variance, args: bounded.append(args)
    )
    assert main(["evaluate", str(untrained_checkpoint), "--log-likelihood", "20000"]) == 0
    assert "--log-likelihood 20000: the test set has 10000 images; bounding them all" in capsys.readouterr().out
    assert (bounded[0].samples, bounded[0].workers) == (1000, 1)  # the defaults, filled in by the check


@pytest.mark.parametrize("kind", ["text", "checkpoint", "folder"])
def test_a_bounds_file_that_holds_no_saved_bounds_is_refused_before_evaluating_and_left_alone(
    tmp_path: Path, capsys, untrained_checkpoint: Path, kind: str
) -> None:
    other = {"text": tmp_path / "notes.txt", "checkpoint": untrained_checkpoint, "folder": tmp_path / "results"}[kind]
    if kind == "text":
        other.write_text("keep me")
    if kind == "folder":
        other.mkdir()
    before = other.read_bytes() if other.is_file() else None
    command = ["evaluate", str(untrained_checkpoint), "--log-likelihood", "2", "--samples", "10"]
    assert main([*command, "--bounds-file", str(other)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: {other} is not a file of saved bounds: --bounds-file takes a new file, or one an earlier "
        "--log-likelihood run saved; pass another path\n"
    )
    assert captured.out == ""  # refused before the test metrics, not after them
    assert (other.read_bytes() if other.is_file() else None) == before and other.exists()


def test_a_bounds_file_below_a_file_is_refused_before_evaluating(tmp_path: Path, capsys, untrained_checkpoint) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    wanted = tmp_path / "notes.txt" / "bounds.pt"  # a file where the bounds' folder would be
    command = ["evaluate", str(untrained_checkpoint), "--log-likelihood", "2", "--samples", "10"]
    assert main([*command, "--bounds-file", str(wanted)]) == 2
    assert capsys.readouterr() == (
        "",  # refused before the test metrics and the bounds, whose work the write would have lost
        f"error: cannot write {wanted}: {tmp_path / 'notes.txt'} is a file, not a folder; nothing was written: "
        "choose another path, or move that file out of the way\n",
    )
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_an_atomic_write_below_a_file_says_so_not_to_free_space(tmp_path: Path) -> None:
    from vae_lib.core.files import CheckpointError, replaced_atomically

    (tmp_path / "figures").write_text("notes")
    refusal = r"figures is a file, not a folder; nothing was written: choose another"
    with (
        pytest.raises(CheckpointError, match=refusal),
        replaced_atomically(tmp_path / "figures" / "deeper" / "plot.png") as temporary,
    ):
        temporary.write_bytes(b"a figure")
    assert (tmp_path / "figures").read_text() == "notes"


def _stop_at_the_second_part(monkeypatch) -> None:
    """Make bounding log p(x) stop with Ctrl-C when it starts its second part of images."""
    from vae_lib.core import likelihood

    parts, real = [], likelihood.importance_log_weights

    def weights(*args, **kwargs) -> torch.Tensor:
        parts.append(kwargs["first_index"])
        if len(parts) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(likelihood, "importance_log_weights", weights)


def test_ctrl_c_while_bounding_says_how_many_images_the_bounds_file_keeps(
    tmp_path: Path, capsys, monkeypatch, untrained_checkpoint: Path
) -> None:
    from vae_lib.core.likelihood import BOUND_PART, read_saved_bounds

    _stop_at_the_second_part(monkeypatch)
    bounds_file = tmp_path / "bounds.pt"
    command = ["evaluate", str(untrained_checkpoint), "--log-likelihood", str(BOUND_PART + 10), "--samples", "10"]
    assert main([*command, "--bounds-file", str(bounds_file)]) == 130
    assert capsys.readouterr().err == (
        f"stopped while bounding log p(x): the bounds of {BOUND_PART} of {BOUND_PART + 10} images are saved in "
        f"{bounds_file}; run the same command to continue\n"
    )
    assert int((~read_saved_bounds(bounds_file).bounds[:, 0].isnan()).sum()) == BOUND_PART
    from vae_lib.core import likelihood

    monkeypatch.setattr(
        likelihood, "importance_log_weights", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt)
    )  # Ctrl-C before the first part ends
    first = tmp_path / "first.pt"
    assert main([*command, "--bounds-file", str(first)]) == 130
    assert capsys.readouterr().err == (  # it said the bounds of 0 images were saved in a file that did not exist
        f"stopped while bounding log p(x) on {BOUND_PART + 10} test images, before its first part of {BOUND_PART} "
        f"ended; nothing was saved in {first} yet: run the same command to start again\n"  # a part of 60, it said
    )
    assert not first.exists()


def test_ctrl_c_while_bounding_without_a_bounds_file_says_nothing_was_saved(
    capsys, monkeypatch, untrained_checkpoint: Path
) -> None:
    from vae_lib.core.likelihood import BOUND_PART

    _stop_at_the_second_part(monkeypatch)
    command = ["evaluate", str(untrained_checkpoint), "--log-likelihood", str(BOUND_PART + 10), "--samples", "10"]
    assert main(command) == 130
    assert capsys.readouterr().err == (
        f"stopped while bounding log p(x) on {BOUND_PART + 10} test images; nothing was saved (--bounds-file FILE "
        "saves each part's bounds as it ends, and a run given it again continues)\n"
    )


def test_ctrl_c_outside_training_and_bounding_names_the_command_it_stopped(
    capsys, monkeypatch, untrained_checkpoint: Path
) -> None:
    def interrupted(*args, **kwargs) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "evaluate", interrupted)
    assert main(["evaluate", str(untrained_checkpoint)]) == 130
    assert capsys.readouterr().err == "stopped: python -m vae_lib evaluate was interrupted before it finished\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--racers", "2d-fast", "2d-lab"], "--racers only applies to --time-to-quality, not to the speed benchmark"),
        (["--to-the-end"], "--to-the-end only applies to --time-to-quality, not to the speed benchmark"),
        (["--profile", "2d-fast", "--fast-epochs", "3"], "--fast-epochs only applies to --time-to-quality, not to"),
        (["--profile", "2d-fast", "--steps", "10"], "--steps only applies to the speed benchmark, not to --profile"),
        (["--time-to-quality", "2d", "--reference", "ref"], "--reference only applies to the speed benchmark, not"),
        (["--time-to-quality", "2d", "--profile", "2d-fast"], "argument --profile: not allowed with argument"),
        (["--time-to-quality", "2d", "8d", "--racers", "2d-fast", "2d-lab"], "--racers races to one target"),
    ],
)
def test_a_benchmark_option_the_chosen_benchmark_would_ignore_is_refused(
    monkeypatch, capsys, options: list[str], message: str
) -> None:
    from vae_lib.tools import benchmark

    ran: list[str] = []
    for name in ("run_benchmark", "time_to_quality", "profile_epoch"):
        monkeypatch.setattr(benchmark, name, lambda *args, name=name, **kwargs: ran.append(name))
    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", *options])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: python -m vae_lib benchmark") and message in error
    assert ran == []


def test_reporting_one_shipped_model_keeps_the_other_s_panel_of_the_time_to_quality_figure(
    tmp_path: Path, monkeypatch
) -> None:
    from PIL import Image

    from vae_lib.core.settings import outputs_dir
    from vae_lib.course.shipped import shipped_history
    from vae_lib.pictures import viz

    shipped_figure = outputs_dir() / "figures" / "time_to_quality.png"
    (tmp_path / "checkpoints").mkdir()
    for path in (outputs_dir() / "checkpoints").glob("vae_[28]d*.pt"):
        (tmp_path / "checkpoints" / path.name).symlink_to(path)
    monkeypatch.setenv("VAE_OUTPUTS_DIR", str(tmp_path))
    drawn, draw = [], viz.plot_time_to_quality
    monkeypatch.setattr(
        viz, "plot_time_to_quality", lambda histories, targets: drawn.append(histories) or draw(histories, targets)
    )
    assert main(["reproduce", "--report-only", "2d"]) == 0
    assert [list(histories) for histories in drawn] == [["2d", "8d"]]
    assert drawn[0]["8d"].epochs == shipped_history("8d").epochs
    figures = tmp_path / "figures"
    assert sorted(path.name for path in figures.iterdir()) == [
        "metrics_2d.png",
        "reconstructions_2d.png",
        "time_to_quality.png",
    ]
    assert Image.open(figures / "time_to_quality.png").size == Image.open(shipped_figure).size  # both panels


@pytest.mark.parametrize("swap", ["vae_2d.pt", "vae_2d_epoch_020.pt", "vae_8d.pt"])
def test_a_shipped_file_holding_another_model_or_epoch_is_refused_before_any_figure_changes(
    tmp_path: Path, monkeypatch, capsys, swap: str
) -> None:
    from vae_lib.core.settings import outputs_dir

    (tmp_path / "checkpoints").mkdir()
    for path in (outputs_dir() / "checkpoints").glob("vae_[28]d*.pt"):
        (tmp_path / "checkpoints" / path.name).symlink_to(path)
    stand_in = {"vae_2d.pt": "vae_8d.pt", "vae_2d_epoch_020.pt": "vae_2d_epoch_001.pt", "vae_8d.pt": "vae_2d.pt"}[swap]
    (tmp_path / "checkpoints" / swap).unlink()
    (tmp_path / "checkpoints" / swap).symlink_to(outputs_dir() / "checkpoints" / stand_in)
    figures = tmp_path / "figures"
    figures.mkdir()
    for name in ("metrics_2d.png", "reconstructions_2d.png", "time_to_quality.png"):
        (figures / name).write_bytes(b"the figure drawn before")
    monkeypatch.setenv("VAE_OUTPUTS_DIR", str(tmp_path))
    assert main(["reproduce", "--report-only", "2d"]) == 2  # 8d: only its panel of the time-to-quality figure
    refusal = capsys.readouterr()
    # No metrics from the wrong file: a bad 8-D file (drawn in the time-to-quality figure) stops the figures after
    # the 2-D model's own report
    reported = refusal.out.splitlines()
    assert reported == [] if swap != "vae_8d.pt" else len(reported) == 1 and reported[0].startswith("2d: 40 epochs")
    expected = {
        "vae_2d.pt": "holds another model than the 2d recipe's (its settings vs the recipe's: latent_dim: 8 vs 2;",
        "vae_2d_epoch_020.pt": "holds epoch 1 of its run, not epoch 20: it is one of the files shipped",
        "vae_8d.pt": "holds another model than the 8d recipe's (its settings vs the recipe's: latent_dim: 2 vs 8;",
    }[swap]
    assert f"{tmp_path / 'checkpoints' / swap} {expected}" in refusal.err
    assert refusal.err.rstrip().endswith(f"or retrain it (python -m vae_lib reproduce {swap[4:6]})")
    assert all(path.read_bytes() == b"the figure drawn before" for path in figures.iterdir())
    assert len(list(figures.iterdir())) == 3  # no temporary file left


def test_the_figures_folder_being_a_file_is_refused_before_anything_is_drawn(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from vae_lib.core.settings import outputs_dir

    (tmp_path / "checkpoints").mkdir()
    for path in (outputs_dir() / "checkpoints").glob("vae_[28]d*.pt"):
        (tmp_path / "checkpoints" / path.name).symlink_to(path)
    (tmp_path / "figures").write_bytes(b"notes")
    monkeypatch.setenv("VAE_OUTPUTS_DIR", str(tmp_path))
    assert main(["reproduce", "--report-only", "2d"]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'figures'} is a file, not the folder of figures: move it out of the way and run again\n"
    )
    assert (tmp_path / "figures").read_bytes() == b"notes"


def test_reproduce_checks_every_recipe_s_run_folder_before_the_first_trains(tmp_path: Path, monkeypatch) -> None:
    from vae_lib.core.files import CheckpointError
    from vae_lib.tools import reproduce

    trained: list[str] = []
    monkeypatch.setattr(reproduce, "train_recipe", lambda name, run_dir, report: trained.append(name))
    (tmp_path / "recipe_8d").write_text("notes")  # a file where the second recipe's run folder belongs
    with pytest.raises(CheckpointError, match=r"recipe_8d is a file, not a run folder"):
        reproduce.reproduce(["2d", "8d"], print, run_root=tmp_path)
    assert trained == [] and (tmp_path / "recipe_8d").read_text() == "notes"
    (tmp_path / "recipe_8d").unlink()
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "videos").write_text("notes")  # where the videos go: met after training before
    monkeypatch.setenv("VAE_OUTPUTS_DIR", str(outputs))
    with pytest.raises(CheckpointError, match=r"cannot write .*latent_2d.mp4: .*videos is a file, not a folder"):
        reproduce.reproduce(["2d", "8d"], print, run_root=tmp_path)
    assert trained == []


def test_a_reference_clone_that_does_not_import_is_refused_before_the_benchmark_runs(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import importlib.util

    from vae_lib.tools import benchmark

    (tmp_path / "trainer.py").write_text("")  # a clone whose files are there but empty
    (tmp_path / "utils.py").write_text("")
    find_spec = importlib.util.find_spec  # cv2 present, as the reference needs (this test never imports it)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: name == "cv2" or find_spec(name, *rest))
    ran: list[str] = []
    monkeypatch.setattr(benchmark, "run_benchmark", lambda *args, **kwargs: ran.append("benchmark"))
    assert main(["benchmark", "--steps", "5", "--reference", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: the reference trainer in {tmp_path} cannot be imported (ImportError: cannot import name "
        f"'ModularTrainer' from 'trainer' ({tmp_path / 'trainer.py'})): clone the reference implementation "
        "(github.com/Ganesh2609/VariationalAutoencoder) there, unchanged\n"
    )
    assert ran == []


def test_a_timed_command_that_fails_is_an_error_naming_its_last_line(tmp_path: Path) -> None:
    from vae_lib.tools.benchmark import timed_command

    script = "import sys\nprint('working', file=sys.stderr)\nraise SystemExit('the data is missing')"
    with pytest.raises(OSError) as failure:  # the command line prints it as an error, without a traceback
        timed_command([sys.executable, "-c", script, "argument"], tmp_path)
    assert str(failure.value) == (f"{sys.executable} -c <script> argument failed (exit status 1): the data is missing")


def test_the_commands_timed_against_the_reference_run_at_this_process_thread_count(
    tmp_path: Path, monkeypatch, three_threads
) -> None:
    """benchmark --threads N --reference times the reference's epoch and both train commands at N threads."""
    from vae_lib.tools import benchmark

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a child that set no count of its own would run at 1, not 3

    clone, recorded = tmp_path / "clone", tmp_path / "reference_threads"
    clone.mkdir()  # a stand-in for the reference's trainer: it records its torch thread count and trains nothing
    (clone / "trainer.py").write_text(
        "import pathlib, torch\n"
        "class ModularTrainer:\n"
        "    def __init__(self, **settings): pass\n"
        f"    def train(self): pathlib.Path({str(recorded)!r}).write_text(str(torch.get_num_threads()))\n"
    )
    (clone / "utils.py").write_text(
        "import torch\n"
        "class VAELoss:\n"
        "    def __init__(self, alpha): pass\n"
        "class VariationalAutoencoder(torch.nn.Linear):\n"
        "    def __init__(self, latent_dim): super().__init__(1, latent_dim)\n"
    )
    timed = benchmark.timed_command
    train_threads: list[str] = []

    def timed_command(command: list[str], cwd: Path) -> float:
        if "vae_lib" in command:  # a train command: its --threads, without training
            train_threads.append(command[command.index("--threads") + 1])
            return 20.0
        return timed(command, cwd)

    monkeypatch.setattr(benchmark, "check_reference", lambda reference: None)
    monkeypatch.setattr(benchmark, "matmul_gflops", lambda repeats, dtype: 1000.0)
    monkeypatch.setattr(benchmark, "timed_command", timed_command)
    lines: list[str] = []
    benchmark.compare_with_reference(clone, lines.append, rounds=1)
    assert recorded.read_text() == "3"
    assert train_threads == ["3", "3"]
    assert any(line.startswith("one epoch, whole command at 3 threads, median of 1:") for line in lines)


def test_a_seed_torch_cannot_take_is_refused_by_the_parser(capsys, untrained_checkpoint: Path) -> None:
    for seed, message in [(2**64, "must be at most 2**64 - 1"), (-1, "must be an integer >= 0, got -1")]:
        with pytest.raises(SystemExit) as exit_status:
            main(["evaluate", str(untrained_checkpoint), "--seed", str(seed)])
        assert exit_status.value.code == 2 and f"argument --seed: {message}" in capsys.readouterr().err


def test_a_seed_whose_per_image_seeds_torch_cannot_take_is_refused_before_the_test_metrics(
    capsys, monkeypatch, untrained_checkpoint: Path
) -> None:
    command = ["evaluate", str(untrained_checkpoint), "--log-likelihood", "2", "--samples", "10"]
    assert main([*command, "--seed", str(2**64 - 1)]) == 2  # "Overflow when unpacking long long" after the metrics
    printed = capsys.readouterr()
    assert printed.out == "" and "give a seed of at most 18446744073709551614" in printed.err
    bounded = []
    monkeypatch.setattr(cli, "_print_log_likelihood", lambda *args: bounded.append(args))
    last = 2**64 - 1 - 9999  # 10,000 test images bounded of the 20,000 asked: the last is seeded 2**64 - 1
    assert main(["evaluate", str(untrained_checkpoint), "--log-likelihood", "20000", "--seed", str(last)]) == 0
    assert len(bounded) == 1  # it was refused, reckoned over 20,000 images


def test_bounding_a_bernoulli_model_trained_on_grey_images_is_refused_before_the_metrics(capsys, tmp_path) -> None:
    config = TrainConfig(latent_dim=2, likelihood="bernoulli", epochs=1, train_subset=128, test_subset=32)
    Trainer(replace(config, log_every=2, step_test_images=16), run_dir=tmp_path, progress=False).fit(1)
    assert main(["evaluate", str(tmp_path), "--log-likelihood", "2", "--samples", "10"]) == 2
    printed = capsys.readouterr()  # the metrics, then advice to binarise the images, which the command cannot do
    assert printed.out == "" and "trained on grey images (without --binarise)" in printed.err


def test_sample_counts_left_out_of_the_bounds_are_named_and_a_conditional_model_s_bound_is_given_its_class(
    capsys,
) -> None:
    from vae_lib.course.shipped import shipped_checkpoint

    command = ["evaluate", str(shipped_checkpoint("cvae-2d")), "--log-likelihood", "2", "--samples", "25"]
    assert main(command) == 0
    printed = capsys.readouterr().out  # k = 10 was left out silently, and the bound was called log p(x)
    assert (
        "k = 10 left out: 25 samples do not split into groups of that size (--samples 10 gives every k up to it)"
        in (printed)
    )
    assert "log p(x | y), given each image's class, in nats per image" in printed
    assert ": 2-D conditional model, gaussian likelihood, 10000 mnist test images" in printed  # neither was named
    assert [line.split(":")[0] for line in printed.splitlines() if line.startswith("    k =")] == ["    k =    1"]


def test_a_run_that_fails_to_start_leaves_no_empty_folders_behind(capsys, tmp_path: Path) -> None:
    out = tmp_path / "new" / "run"
    assert main(["train", "--dataset", "fashionmnist", "--out", str(out)]) == 2  # the folder was left, empty
    assert "unknown dataset 'fashionmnist'" in capsys.readouterr().err and not (tmp_path / "new").exists()
    assert main(["train", "--train-subset", "10", "--epochs", "1", "--out", str(out)]) == 2
    assert "larger than the 10 training images" in capsys.readouterr().err and not (tmp_path / "new").exists()
    from vae_lib.core.train import check_run_folder

    check_run_folder(TrainConfig(), out)  # sweep and reproduce check every folder first: the check leaves none
    assert not (tmp_path / "new").exists()
    roundabout = tmp_path / "made" / ".." / "new" / "run"  # makes "made" on the way to "new"
    assert main(["train", "--train-subset", "10", "--epochs", "1", "--out", str(roundabout)]) == 2
    assert list(tmp_path.iterdir()) == [] and "larger than the 10 training images" in capsys.readouterr().err
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "notes.txt").write_text("mine")  # a folder that was there is left as it was
    assert main(["train", "--train-subset", "10", "--epochs", "1", "--out", str(tmp_path / "new")]) == 2
    assert [path.name for path in (tmp_path / "new").iterdir()] == ["notes.txt"]


def test_a_frame_rate_no_screen_shows_is_refused_by_the_parser_which_names_the_range(capsys, tmp_path: Path) -> None:
    for fps, message in [(61, "must be at most 60 frames a second"), (0, "must be a positive integer, got 0")]:
        with pytest.raises(SystemExit) as exit_status:
            main(["video", str(tmp_path), "--fps", str(fps)])
        assert exit_status.value.code == 2 and f"argument --fps: {message}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    with pytest.raises(SystemExit):
        main(["video", "--help"])
    assert "frames a second, 1 to 60 (default: 12)" in " ".join(capsys.readouterr().out.split())


def test_more_benchmark_steps_than_an_epoch_holds_are_refused_not_cut_short() -> None:
    from vae_lib.tools.benchmark import run_benchmark

    lines: list[str] = []
    with pytest.raises(
        ValueError, match=r"^steps must be at most 937, the steps of one epoch .* at batch 64; got 938$"
    ):
        run_benchmark(lines.append, steps=938)  # it timed 937 and reported "938 timed steps"
    assert lines == []


@pytest.mark.parametrize(
    "command", [["benchmark", "--steps"], ["benchmark", "--threads"], ["train", "--epochs"], ["train", "--threads"]]
)
def test_a_count_that_is_not_a_whole_number_is_named_as_such(capsys, command: list[str]) -> None:
    with pytest.raises(SystemExit):
        main([*command, "1.5"])
    assert f"argument {command[1]}: must be a whole number, got '1.5'" in capsys.readouterr().err


def test_train_counts_one_epoch_in_the_singular(tmp_path, capsys, three_threads) -> None:
    # "for 1 epochs" and "already has 1 epochs" before
    run = ["train", "--epochs", "1", "--precision", "fp32", "--out", str(tmp_path / "run"), *SMALL, *NARROW]
    assert main(run) == 0
    assert " for 1 epoch on cpu with 3 threads (--threads) in fp32 " in capsys.readouterr().out
    assert main(run) == 0
    assert capsys.readouterr().out.rstrip().endswith("already has 1 epoch (asked for 1); nothing to do")


def test_a_model_too_large_for_the_memory_ends_in_an_error_line(monkeypatch, capsys) -> None:
    def too_large(*args, **options):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 5017600000000 bytes. Error code 12 (Cannot allocate memory)"
        )

    monkeypatch.setattr(cli, "open_run", too_large)  # as --latent-dim 100000000 fails while building the model
    assert main(["train", "--latent-dim", "100000000", "--epochs", "1"]) == 2
    assert capsys.readouterr().err == (
        "error: not enough memory ([enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 5017600000000 bytes. Error code 12 (Cannot allocate memory)): choose a "
        "smaller model or batch\n"
    )
    monkeypatch.setattr(cli, "open_run", lambda *args, **options: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):  # any other RuntimeError is not dressed up as a user's error
        main(["train", "--epochs", "1"])


def test_output_cut_short_by_its_reader_ends_quietly() -> None:
    code = (
        "import sys\n"
        "from vae_lib.tools import cli\n"
        "cli._student_notebooks = lambda args: [print(line) for line in range(10**6)]\n"
        "sys.exit(cli.main(['student-notebooks']))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT
    )
    assert process.stdout.readline() == "0\n"
    process.stdout.close()  # as `| head -1` does
    assert process.wait(timeout=60) == 1  # stopped, not refused: 2 is for bad input
    assert process.stderr.read() == (  # "error: [Errno 32] Broken pipe" before
        "stopped: the output of python -m vae_lib student-notebooks was closed by its reader (| head?); what it saved "
        "stays\n"
    )


def test_ctrl_c_while_the_command_starts_ends_in_one_line(tmp_path) -> None:
    (tmp_path / "sitecustomize.py").write_text(  # Ctrl-C arriving while torch is imported, as a hook can make it
        "import builtins\n"
        "real_import = builtins.__import__\n"
        "def interrupted(name, *args, **options):\n"
        "    if name == 'vae_lib.tools.cli':\n"
        "        raise KeyboardInterrupt\n"
        "    return real_import(name, *args, **options)\n"
        "builtins.__import__ = interrupted\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)])}
    result = subprocess.run(
        [sys.executable, "-m", "vae_lib", "train"], capture_output=True, text=True, env=environment, timeout=120
    )
    assert result.returncode == 130  # a KeyboardInterrupt traceback before
    assert result.stderr == "stopped while starting, before the command began; nothing was changed\n"


def test_a_kept_epoch_beyond_the_run_s_epochs_is_warned_of(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert (
        main(["train", "--epochs", "1", "--keep-epochs", "1", "5", "--out", str(out), "--device", "cpu", *SMALL]) == 0
    )
    assert "warning: --keep-epochs 5 lies beyond the run's 1 epoch: nothing is kept for it unless the run goes on" in (
        capsys.readouterr().out
    )
    assert sorted(path.name for path in RunFolder(out).kept_epochs()) == ["epoch_001.pt"]
    assert main(["train", "--epochs", "2", "--keep-epochs", "2", "--out", str(out), "--device", "cpu", *SMALL]) == 0
    capsys.readouterr()
    assert main(["train", "--epochs", "1", "--keep-epochs", "2", "--out", str(out), "--device", "cpu", *SMALL]) == 0
    assert "warning" not in capsys.readouterr().out  # epoch 2 is kept already
    recipe = tmp_path / "recipe"
    assert main(["train", "--recipe", "2d", "--epochs", "1", "--out", str(recipe), "--device", "cpu", *SMALL]) == 0
    assert "warning" not in capsys.readouterr().out  # the recipe's own keep_epochs (1, 20, 40) were not asked for


@pytest.fixture
def three_threads():
    """torch at 3 CPU threads for the test (neither the autouse 2 nor a default of these 2-core machines)."""
    torch.set_num_threads(3)


def test_train_threads_sets_the_count_for_the_run_and_puts_it_back(tmp_path, capsys, three_threads) -> None:
    # two trainings at once on 2 cores, each at two threads, ran 7-9x slower than one alone: --threads 1
    run = ["train", "--epochs", "1", "--precision", "fp32", "--out", str(tmp_path / "run"), *SMALL, *NARROW]
    assert main([*run, "--threads", "1"]) == 0
    assert " on cpu with 1 thread (--threads) in fp32 " in capsys.readouterr().out
    assert torch.get_num_threads() == 3  # `%run -m vae_lib train --threads 1` leaves a notebook kernel's count alone
    assert main([*run, "--epochs", "2"]) == 0
    assert " on cpu with 3 threads (--threads) in fp32 " in capsys.readouterr().out


def test_train_threads_are_put_back_after_a_refused_run(tmp_path, capsys, three_threads) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert main(["train", "--threads", "1", "--epochs", "1", "--out", str(notes), *SMALL, *NARROW]) == 2
    assert "is a file, not a run folder" in capsys.readouterr().err
    assert torch.get_num_threads() == 3 and notes.read_text() == "keep me"


def test_benchmark_threads_apply_while_it_runs(monkeypatch, capsys, three_threads) -> None:
    from vae_lib.tools import benchmark

    seen = []
    monkeypatch.setattr(benchmark, "run_benchmark", lambda report, **options: seen.append(torch.get_num_threads()))
    assert main(["benchmark", "--threads", "1", "--steps", "3"]) == 0
    assert seen == [1] and torch.get_num_threads() == 3


def test_more_threads_than_cores_are_warned_of(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(cli, "_usable_cores", lambda: 2)
    run = ["train", "--epochs", "1", "--out", str(tmp_path / "run"), *SMALL, *NARROW]
    assert main([*run, "--threads", "3"]) == 0
    assert capsys.readouterr().err.startswith(
        "warning: --threads 3 is more than the 2 cores this process may use: the threads beyond them wait on each "
        "other, which slows a run down\n"
    )
    assert main([*run, "--epochs", "2", "--threads", "2"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_usable_cores_are_counted() -> None:
    assert 1 <= cli._usable_cores() <= (os.cpu_count() or 1)


def test_threads_below_one_are_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--threads", "0"])
    assert "argument --threads: must be a positive integer, got 0" in capsys.readouterr().err
