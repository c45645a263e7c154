"""Retrain the shipped models from their recipes, export them to outputs/checkpoints, make their videos,
and report their test metrics and the time each took to reach its quality target.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from vae_lib.core.checkpoint import export_checkpoint, history_of, load_model, read_checkpoint
from vae_lib.core.config import RECIPES, SHIPPED_RECIPES
from vae_lib.core.datasets import load_dataset
from vae_lib.core.evaluate import evaluate
from vae_lib.core.files import CheckpointError, refuse_file_in_the_way, replaced_atomically
from vae_lib.core.hooks import EpochReporter
from vae_lib.core.run_folder import RunFolder
from vae_lib.core.settings import outputs_dir, runs_dir
from vae_lib.core.train import Trainer, check_run_folder, open_run
from vae_lib.course.shipped import (
    QUALITY_TARGETS,
    check_shipped_model,
    shipped_checkpoint,
    shipped_epochs,
    shipped_history,
    shipped_path,
    shipped_video,
)
from vae_lib.pictures.snapshots import SNAPSHOT_EVERY, SnapshotRecorder

Report = Callable[[str], None]


def train_recipe(name: str, run_dir: Path, report: Report) -> Trainer:
    """Train (or finish training) a recipe in run_dir, recording snapshots for its video."""
    config = RECIPES[name]
    test_data = load_dataset(config.dataset, train=False)
    hooks = [SnapshotRecorder(run_dir, test_data, every=SNAPSHOT_EVERY), EpochReporter(report)]
    trainer = open_run(config, run_dir, report=report, test_data=test_data, hooks=hooks, progress=sys.stderr.isatty())
    trainer.finish()
    return trainer


def ship(name: str, run_dir: Path, report: Report) -> None:
    """Export a finished run's final and kept checkpoints and its video into outputs/."""
    from vae_lib.pictures.video import make_run_video

    run_folder = RunFolder(run_dir)
    export_checkpoint(run_folder.checkpoint, shipped_path(name))
    for epoch in shipped_epochs(name)[:-1]:  # the last epoch's checkpoint is the shipped model itself
        export_checkpoint(run_folder.kept_epoch(epoch), shipped_path(name, epoch))
    video = make_run_video(run_dir, gif=(name == "2d"))
    for kind in ("mp4", "gif"):
        if kind in video:
            shipped_video(name, kind).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(video[kind], shipped_video(name, kind))
    report(f"{name}: video of {video['frames']} frames made in {video['seconds']:.1f} s")


def report_shipped(name: str, report: Report) -> dict[str, float]:
    """Report and return a shipped model's test metrics and its time to its quality target, after checking that its
    files hold its recipe's model (check_shipped_model)."""
    check_shipped_model(name)
    path = shipped_checkpoint(name)
    state = read_checkpoint(path)
    metrics = evaluate(load_model(path), load_dataset(RECIPES[name].dataset, train=False))
    target = QUALITY_TARGETS[name]
    history = history_of(state)
    reached = history.seconds_to_target(target.recon)
    when = f"reached after {reached / 60:.1f} min" if reached is not None else "not reached"
    report(
        f"{name}: {state['epoch']} epochs in {history.epochs[-1].seconds / 60:.1f} min; "
        f"test total {metrics['total']:.4f}, recon {metrics['recon']:.4f}, KL {metrics['kl']:.2f}; "
        f"{target.label} {target.recon}: {when}"
    )
    return {**metrics, "seconds_to_target": reached if reached is not None else float("nan")}


def write_figures(names: list[str]) -> list[Path]:
    """Save the README's figures for the named shipped models into outputs/figures/ and return their paths.

    The time-to-quality figure has a panel per shipped checkpoint, named or not: redrawing the figures of one
    model never drops another's panel. Every model drawn is checked first (check_shipped_model), so a file of
    another model changes no figure, and each figure replaces its file only once it is drawn whole.
    """
    import matplotlib

    matplotlib.use("Agg")
    from vae_lib.core.evaluate import reconstruct
    from vae_lib.pictures import viz

    shown = [name for name in SHIPPED_RECIPES if shipped_path(name).exists()]
    for name in dict.fromkeys([*names, *shown]):
        check_shipped_model(name)
    folder = outputs_dir() / "figures"
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder} is a file, not the folder of figures: move it out of the way and run again")
    written = []

    def save(figure: matplotlib.figure.Figure, file_name: str) -> None:
        written.append(folder / file_name)
        with replaced_atomically(written[-1]) as temporary:
            figure.savefig(temporary, dpi=90, format="png")

    for name in names:
        originals = load_dataset(RECIPES[name].dataset, train=False).images[:12]
        save(
            viz.plot_metrics(shipped_history(name), title=f"{name.upper()} model: training metrics"),
            f"metrics_{name}.png",
        )
        rows = {
            f"epoch {epoch}": reconstruct(load_model(shipped_checkpoint(name, epoch)), originals)
            for epoch in shipped_epochs(name)
        }
        figure = viz.plot_reconstructions(
            originals, rows, title=f"{name.upper()} model: test images reconstructed during training"
        )
        save(figure, f"reconstructions_{name}.png")
    histories = {name: shipped_history(name) for name in shown}
    save(viz.plot_time_to_quality(histories, {name: QUALITY_TARGETS[name] for name in shown}), "time_to_quality.png")
    return written


def reproduce(names: list[str], report: Report, run_root: Path | None = None) -> None:
    """Train, ship and report each named recipe, and redraw the README's figures."""
    run_root = run_root or runs_dir()
    for name in names:  # every run folder, and where its files will go, checked before the first recipe trains
        check_run_folder(RECIPES[name], run_root / f"recipe_{name}")
        for shipped in (shipped_path(name), shipped_video(name), outputs_dir() / "figures" / f"metrics_{name}.png"):
            refuse_file_in_the_way(shipped)
    for name in names:
        run_dir = run_root / f"recipe_{name}"
        train_recipe(name, run_dir, report)
        ship(name, run_dir, report)
    for name in names:
        report_shipped(name, report)
    write_figures(names)
