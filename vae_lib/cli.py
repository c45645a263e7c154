"""Command line: `python -m vae_lib train | evaluate | video | reproduce | prepare-data | benchmark`.

Every setting has a working default; the command line only overrides.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vae_lib.checkpoint import CheckpointError, config_of, load_model, read_checkpoint
from vae_lib.config import LR_SCHEDULES, RECIPES, TrainConfig
from vae_lib.data import DataError, load_dataset, prepare_mnist
from vae_lib.evaluate import evaluate
from vae_lib.model import DEFAULT_WIDTHS
from vae_lib.settings import outputs_dir
from vae_lib.train import CHECKPOINT_NAME, EpochPrinter, Trainer, TrainingDivergedError, TrainingHook


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _train(args: argparse.Namespace) -> None:
    if args.recipe:
        config = RECIPES[args.recipe]
        args.epochs, args.latent_dim = config.schedule_epochs, config.latent_dim
    out = Path(args.out) if args.out else outputs_dir() / "runs" / f"{args.latent_dim}d"
    config = config if args.recipe else TrainConfig(
        latent_dim=args.latent_dim, widths=tuple(args.widths), dataset=args.dataset, alpha=args.alpha,
        learning_rate=args.lr, lr_schedule=args.lr_schedule,
        schedule_epochs=args.epochs if args.lr_schedule == "cosine" else 0, batch_size=args.batch_size,
        seed=args.seed, train_subset=args.train_subset, test_subset=args.test_subset,
        keep_epochs=tuple(args.keep_epochs),
    )
    checkpoint = out / CHECKPOINT_NAME
    hooks: list[TrainingHook] = [EpochPrinter(args.epochs)]
    if args.snapshot_every:
        from vae_lib.snapshots import SnapshotRecorder

        hooks.append(SnapshotRecorder(out, load_dataset(args.dataset, train=False), every=args.snapshot_every))
    trainer = Trainer.open(config, out, device=args.device, hooks=hooks, progress=sys.stderr.isatty())
    remaining = args.epochs - trainer.epoch
    if remaining < 1:
        print(f"{checkpoint} already has {trainer.epoch} epochs (asked for {args.epochs}); nothing to do")
        return
    print(f"training a {config.latent_dim}-D VAE on {config.dataset} for {remaining} epochs on {trainer.device}; "
          f"checkpoints in {out}/")
    trainer.fit(remaining)


def _evaluate(args: argparse.Namespace) -> None:
    config = config_of(read_checkpoint(args.checkpoint))
    model = load_model(args.checkpoint, device=args.device or "cpu")
    test_data = load_dataset(config.dataset, train=False)
    metrics = evaluate(model, test_data.images, config.alpha, seed=args.seed)
    print(f"{args.checkpoint}: {config.latent_dim}-D model, {len(test_data)} {config.dataset} test images")
    for name, value in metrics.items():
        print(f"  test {name:14s} {value:.6f}")


def _video(args: argparse.Namespace) -> None:
    from vae_lib.video import make_run_video

    result = make_run_video(args.run_dir, fps=args.fps, gif=args.gif)
    made = ", ".join(str(result[kind]) for kind in ("mp4", "gif") if kind in result)
    print(f"{result['frames']} frames in {result['seconds']:.1f} s: {made}")


def _reproduce(args: argparse.Namespace) -> None:
    from vae_lib.reproduce import report, reproduce, write_figures

    if args.report_only:
        for name in args.recipes:
            report(name)
        write_figures(args.recipes)
    else:
        reproduce(args.recipes)


def _prepare_data(args: argparse.Namespace) -> None:
    print(f"MNIST ready in {prepare_mnist()}/ (md5 checked)")


def _benchmark(args: argparse.Namespace) -> None:
    from vae_lib.benchmark import run_benchmark

    run_benchmark(steps=args.steps, device=args.device)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for every command."""
    parser = argparse.ArgumentParser(prog="python -m vae_lib", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a VAE (resumes if --out already holds a checkpoint)")
    train.add_argument("--recipe", choices=sorted(RECIPES), help="the shipped models' recorded settings (overrides the others)")
    train.add_argument("--latent-dim", type=_positive_int, default=2)
    train.add_argument("--epochs", type=_positive_int, default=32, help="total epochs the run should reach")
    train.add_argument("--out", help="run folder (default outputs/runs/<latent-dim>d)")
    train.add_argument("--device", help="cuda, mps or cpu (default: the fastest available)")
    train.add_argument("--widths", type=_positive_int, nargs=4, default=list(DEFAULT_WIDTHS), metavar="W",
                       help="the encoder's four channel counts, mirrored by the decoder "
                            f"(default: {' '.join(map(str, DEFAULT_WIDTHS))})")
    train.add_argument("--dataset", default="mnist", help="mnist or emnist-<split>")
    train.add_argument("--batch-size", type=_positive_int, default=64)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant")
    train.add_argument("--alpha", type=float, default=0.001, help="weight of the KL term")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--train-subset", type=int, default=0, help="use only the first N training images")
    train.add_argument("--test-subset", type=int, default=0, help="use only the first N test images")
    train.add_argument("--keep-epochs", type=_positive_int, nargs="*", default=[], help="also keep these epochs' checkpoints")
    train.add_argument("--snapshot-every", type=int, default=0, metavar="STEPS",
                       help="record latent-space snapshots every STEPS steps and at each epoch end, for videos")
    train.set_defaults(run=_train)

    video = commands.add_parser("video", help="turn a run's snapshots into an mp4 (and a GIF)")
    video.add_argument("run_dir")
    video.add_argument("--fps", type=_positive_int, default=12)
    video.add_argument("--gif", action="store_true", help="also write a GIF for READMEs")
    video.set_defaults(run=_video)

    evaluate_command = commands.add_parser("evaluate", help="print a checkpoint's test metrics")
    evaluate_command.add_argument("checkpoint")
    evaluate_command.add_argument("--device")
    evaluate_command.add_argument("--seed", type=int, default=0, help="seed of the sampled z")
    evaluate_command.set_defaults(run=_evaluate)

    reproduce_command = commands.add_parser("reproduce", help="retrain the shipped models from their recipes and report")
    reproduce_command.add_argument("recipes", nargs="*", choices=sorted(RECIPES), default=sorted(RECIPES))
    reproduce_command.add_argument("--report-only", action="store_true", help="only print the shipped models' metrics and redraw their figures")
    reproduce_command.set_defaults(run=_reproduce)

    prepare = commands.add_parser("prepare-data", help="download and check a dataset")
    prepare.add_argument("dataset", choices=["mnist"])
    prepare.set_defaults(run=_prepare_data)

    benchmark = commands.add_parser("benchmark", help="measure training speed against this machine's matmul rate")
    benchmark.add_argument("--steps", type=_positive_int, default=400)
    benchmark.add_argument("--device")
    benchmark.set_defaults(run=_benchmark)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; errors the user can fix print one clear line and exit with status 2."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (DataError, CheckpointError, TrainingDivergedError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped; the last complete epoch's checkpoint is intact: run the same command to resume", file=sys.stderr)
        return 130
    return 0
