"""Command line: train, evaluate and film the course's VAEs; each command's --help says more.

`python -m vae_lib train | sweep | video | evaluate | reproduce | prepare-data | benchmark | student-notebooks |
settle-progress-bars`.

Every setting has a working default; the command line only overrides.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import typing
from dataclasses import fields, replace
from functools import partial
from pathlib import Path

import torch

from vae_lib.core.checkpoint import config_of, load_model, read_checkpoint
from vae_lib.core.config import MAX_FPS, MAX_SEED, RECIPES, SHIPPED_RECIPES, TrainConfig
from vae_lib.core.data import TEST_BINARISATION_SEED, DataError, ImageDataset
from vae_lib.core.datasets import DATASETS, dataset_entry, load_dataset, prepare_dataset
from vae_lib.core.device import numerics_name, threads_described, torch_threads
from vae_lib.core.evaluate import evaluate
from vae_lib.core.files import CheckpointError, refuse_file_in_the_way
from vae_lib.core.hooks import EpochReporter, TrainingHook
from vae_lib.core.likelihood import BOUND_PART, check_bound_settings, read_saved_bounds
from vae_lib.core.objective import check_log_likelihood_settings, likelihood_named
from vae_lib.core.run_folder import RunFolder
from vae_lib.core.settings import REPO_ROOT, runs_dir
from vae_lib.core.train import TrainingDivergedError, TrainingInterrupted, evaluation_data, open_run
from vae_lib.core.words import counted
from vae_lib.course.shipped import QUALITY_TARGETS
from vae_lib.course.sweep import SWEEP_ALPHAS, SWEEP_LATENT_DIMS

# The k the bounds on log p(x) are printed for. The largest is the most --samples takes: more samples would only
# average more groups of it, while every image's K samples are decoded and held in memory at once (3 KB each).
BOUND_SAMPLE_COUNTS = (1, 10, 100, 1000, 5000)
# Every command that computes takes --device.
DEVICE_HELP = "cuda, mps or cpu (default: the fastest available)"
THREADS_HELP = "CPU threads torch uses (default: torch's own, OMP_NUM_THREADS if set, else usually one a core)"
# Two trainings at once on a 2-core CPU, each at torch's default of two threads there, ran each epoch 7-9x slower than
# one alone; at one thread each, about 1.6x, on the same machine (the README's lab section).
TRAIN_THREADS_HELP = (
    f"{THREADS_HELP}; the start line names it. Give 1 to each of two commands that train at once on a 2-core machine"
)


class CommandInterrupted(KeyboardInterrupt):
    """Ctrl-C in a command's work other than training; the message says what stopped and what was kept."""


def say(line: str) -> None:
    """Print a line of progress at once, also when the output goes to a log file."""
    print(line, flush=True)


@contextlib.contextmanager
def _cpu_threads(count: int | None) -> typing.Iterator[None]:
    """Run the command with torch at `--threads` CPU threads (None: as it is), warning of more than the usable cores;
    the count is put back after it, so `%run -m vae_lib train --threads 1` in a notebook leaves the kernel's own."""
    if count and count > (cores := _usable_cores()):
        print(
            f"warning: --threads {count} is more than the {counted(cores, 'core')} this process may use: the threads "
            "beyond them wait on each other, which slows a run down",
            file=sys.stderr,
        )
    with torch_threads(count):
        yield


def _usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system tells it, else every core)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _integer_at_least(minimum: int) -> typing.Callable[[str], int]:
    """Return an argparse type that accepts integers >= minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be a positive integer, got {value}"
                if minimum == 1
                else f"must be an integer >= {minimum}, got {value}"
            )
        return value

    return parse


def _seed(text: str) -> int:
    """Parse --seed: an integer torch's generators take, 0 to 2**64 - 1."""
    seed = _integer_at_least(0)(text)
    if seed > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be at most 2**64 - 1 (what torch's generators take), got {seed}")
    return seed


def _frame_rate(text: str) -> int:
    """Parse --fps: frames a second, 1 to MAX_FPS."""
    fps = _integer_at_least(1)(text)
    if fps > MAX_FPS:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_FPS} frames a second (a screen shows no more), got {fps}"
        )
    return fps


def _sample_count(text: str) -> int:
    """Parse --samples: a positive integer up to the largest k the bounds are printed for."""
    count, most = _integer_at_least(1)(text), BOUND_SAMPLE_COUNTS[-1]
    if count > most:
        raise argparse.ArgumentTypeError(
            f"must be at most {most}, got {count}: the bounds are printed for k up to {most}, and each image's "
            "K samples are decoded and held in memory at once"
        )
    return count


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add an option per TrainConfig field, with its help and default; options not given stay out of the namespace."""
    hints = typing.get_type_hints(TrainConfig)
    for item in fields(TrainConfig):
        meta, kind = item.metadata, hints[item.name]
        value_type = typing.get_args(kind)[0] if typing.get_origin(kind) is tuple else kind
        if meta["minimum"] is not None:
            value_type = _integer_at_least(meta["minimum"])
        default = " ".join(map(str, item.default)) if isinstance(item.default, tuple) else str(item.default)
        flags = [f"--{item.name.replace('_', '-')}", *([meta["flag"]] if meta["flag"] else [])]
        if kind is bool:  # --conditional / --no-conditional
            help_text = f"{meta['help']} (default: {'on' if item.default else 'off'})"
            parser.add_argument(
                *flags, dest=item.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
            continue
        parser.add_argument(
            *flags,
            dest=item.name,
            type=value_type,
            nargs=meta["nargs"],
            choices=meta["choices"],
            default=argparse.SUPPRESS,
            metavar=item.name.split("_")[-1].upper(),
            help=f"{meta['help']} (default: {default or 'none'})",
        )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Return the config a command line asks for: the recipe's settings (or the defaults), then each explicit option."""
    base = RECIPES[args.recipe] if args.recipe else TrainConfig()
    given = {item.name: getattr(args, item.name) for item in fields(TrainConfig) if hasattr(args, item.name)}
    return replace(base, **{name: tuple(value) if isinstance(value, list) else value for name, value in given.items()})


def _train(args: argparse.Namespace) -> None:
    config = config_from_args(args)
    out = Path(args.out) if args.out else runs_dir() / (args.recipe or f"{config.latent_dim}d")
    hooks: list[TrainingHook] = [EpochReporter(say)]
    if args.snapshot_every:
        from vae_lib.pictures.snapshots import SnapshotRecorder

        hooks.append(SnapshotRecorder(out, load_dataset(config.dataset, train=False), every=args.snapshot_every))
    trainer = open_run(config, out, report=say, device=args.device, hooks=hooks, progress=sys.stderr.isatty())
    folder = RunFolder(out)
    asked = getattr(args, "keep_epochs", ())  # the epochs this command asked to keep (absent when not given)
    beyond = [epoch for epoch in asked if epoch > trainer.config.epochs and not folder.kept_epoch(epoch).exists()]
    if beyond:
        say(
            f"warning: --keep-epochs {' '.join(map(str, beyond))} lies beyond the run's "
            f"{counted(trainer.config.epochs, 'epoch')}: nothing is kept for it unless the run goes on that far (run "
            "again with --epochs N)"
        )
    if trainer.epoch:
        print(f"resuming {folder.checkpoint} at epoch {trainer.epoch}")
    remaining = trainer.remaining_epochs()
    if remaining < 1:
        print(
            f"{folder.checkpoint} already has {counted(trainer.epoch, 'epoch')} (asked for {config.epochs}); "
            "nothing to do"
        )
        return
    kind = "conditional VAE" if config.conditional else "VAE"
    print(
        f"training a {config.latent_dim}-D {kind} on {config.dataset} for {counted(remaining, 'epoch')} on "
        f"{trainer.device}{_threads_note(trainer.device)} "
        f"in {numerics_name(trainer.config.precision, trainer.device)} (--precision); checkpoints in {out}/"
    )
    trainer.finish()


def _threads_note(device: torch.device) -> str:
    """' with N threads (--threads)' on the CPU, where the thread count sets the speed; '' elsewhere."""
    if device.type != "cpu":
        return ""
    return f" with {threads_described()} (--threads)"


def _evaluate(args: argparse.Namespace) -> None:
    if args.log_likelihood and args.bounds_file:
        _check_bounds_file(Path(args.bounds_file))  # before the test metrics, not after them
    config = config_of(read_checkpoint(args.checkpoint))
    variance = _decoder_variance(config)
    if args.log_likelihood:  # before the test metrics, not after them
        check_log_likelihood_settings(config.likelihood, variance)
        if likelihood_named(config.likelihood).binary and not config.binarise:
            raise ValueError(
                f"this {config.likelihood} model was trained on grey images (without --binarise), of which its "
                "log-likelihood is not a probability: --log-likelihood bounds the models trained with --binarise"
            )
    model = load_model(args.checkpoint, device=args.device or "cpu")
    test_data = evaluation_data(replace(config, test_subset=0))  # every test image, binarised as in training
    if args.log_likelihood:
        check_bound_settings(args.samples, variance, args.seed, min(args.log_likelihood, len(test_data)) - 1)
    metrics = evaluate(model, test_data, config.alpha, seed=args.seed)
    binarisation = f", binarised with seed {TEST_BINARISATION_SEED}" if config.binarise else ""
    print(
        f"{args.checkpoint}: {config.latent_dim}-D {'conditional ' if config.conditional else ''}model, "
        f"{config.likelihood} likelihood, {len(test_data)} {config.dataset} test images{binarisation}"
    )
    for name, value in metrics.items():
        print(f"  test {name:14s} {value:.6f}")
    if args.log_likelihood:
        if args.log_likelihood > len(test_data):
            say(f"--log-likelihood {args.log_likelihood}: the test set has {len(test_data)} images; bounding them all")
        _print_log_likelihood(model, config, test_data.subset(args.log_likelihood), variance, args)


def _decoder_variance(config: TrainConfig) -> float | None:
    """Return the decoder variance a run's loss amounts to where its likelihood's log p(x | z) reads one (the
    Gaussian's, which alpha sets), else None."""
    from vae_lib.core.likelihood import decoder_variance
    from vae_lib.core.model import IMAGE_SIZE

    if not likelihood_named(config.likelihood).needs_variance:
        return None
    return decoder_variance(config.alpha, config.channels * IMAGE_SIZE * IMAGE_SIZE)  # the loss's mean is per value


# Defaults of evaluate's options for --log-likelihood, which are None in the parser so that giving one without
# --log-likelihood can be refused.
BOUND_OPTION_DEFAULTS = {"samples": 1000, "workers": 1}


def _check_evaluate_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, as a usage error, an option of --log-likelihood given without it; fill in their defaults."""
    for name, default in BOUND_OPTION_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
        elif not args.log_likelihood:
            parser.error(f"--{name} only applies to --log-likelihood IMAGES: add it, or leave --{name} out")
    if args.bounds_file is not None and not args.log_likelihood:
        parser.error("--bounds-file only applies to --log-likelihood IMAGES: add it, or leave --bounds-file out")


def _print_log_likelihood(
    model: torch.nn.Module,
    config: TrainConfig,
    test_data: ImageDataset,
    variance: float | None,
    args: argparse.Namespace,
) -> None:
    """Print the importance-sampled bounds on log p(x), in nats per image, for k = 1, 10, ... up to --samples."""
    from vae_lib.core.likelihood import bound_images, bound_summary

    counts = [count for count in BOUND_SAMPLE_COUNTS if count <= args.samples and args.samples % count == 0]
    left_out = [str(count) for count in BOUND_SAMPLE_COUNTS if count <= args.samples and args.samples % count]
    if left_out:
        say(
            f"k = {', '.join(left_out)} left out: {args.samples} samples do not split into groups of that size "
            f"(--samples {max(count for count in BOUND_SAMPLE_COUNTS if count <= args.samples)} gives every k up to it)"
        )
    try:
        bounds = bound_images(
            model,
            test_data,
            args.samples,
            counts,
            variance,
            seed=args.seed,
            save_to=args.bounds_file,
            workers=args.workers,
            progress=sys.stderr.isatty(),
            report=say,
        )
    except KeyboardInterrupt:
        raise CommandInterrupted(_bounding_stopped(args.bounds_file, len(test_data))) from None
    decoder = f"{config.likelihood.capitalize()} decoder" + (
        f" of variance {variance:.4g}" if variance is not None else ""
    )
    quantity = "log p(x | y), given each image's class," if config.conditional else "log p(x)"
    print(f"  {quantity} in nats per image, {decoder}, first {len(bounds)} test images (k = 1 is the ELBO):")
    for count, (mean, error) in bound_summary(bounds, counts).items():
        print(f"    k = {count:4d}: {mean:.2f} nats (standard error {error:.2f})")


def _check_bounds_file(path: Path) -> None:
    """Raise a CheckpointError unless `path` is new or holds saved bounds: a file of the user's is never ours to
    suggest deleting; a new path must be one the bounds can be written to."""
    if not path.exists():
        refuse_file_in_the_way(path)
        return
    try:
        read_saved_bounds(path)
    except CheckpointError:
        raise CheckpointError(
            f"{path} is not a file of saved bounds: --bounds-file takes a new file, or one an earlier "
            "--log-likelihood run saved; pass another path"
        ) from None


def _bounding_stopped(bounds_file: str | None, images: int) -> str:
    """Return what a Ctrl-C while bounding log p(x) stopped, and how many images' bounds `bounds_file` keeps."""
    if bounds_file is None:
        return (
            f"while bounding log p(x) on {images} test images; nothing was saved (--bounds-file FILE saves each "
            "part's bounds as it ends, and a run given it again continues)"
        )
    path = Path(bounds_file)
    if not path.exists():
        return (
            f"while bounding log p(x) on {images} test images, before its first part of {min(images, BOUND_PART)} "
            f"ended; nothing was saved in {path} yet: run the same command to start again"
        )
    done = int((~read_saved_bounds(path).bounds[:, 0].isnan()).sum())
    return (
        f"while bounding log p(x): the bounds of {done} of {images} images are saved in {path}; "
        "run the same command to continue"
    )


def _sweep(args: argparse.Namespace) -> None:
    from vae_lib.tools.sweep import run_sweep

    hooks = [EpochReporter(say)]
    shipped = run_sweep(
        args.latent_dims, args.alphas, hooks=hooks, report=say, device=args.device, progress=sys.stderr.isatty()
    )
    print(f"{len(shipped)} sweep models in {shipped[0].parent}/")


def _video(args: argparse.Namespace) -> None:
    from vae_lib.pictures.video import make_run_video

    result = make_run_video(args.run_dir, fps=args.fps, gif=args.gif)
    made = ", ".join(str(result[kind]) for kind in ("mp4", "gif") if kind in result)
    print(f"{result['frames']} frames in {result['seconds']:.1f} s: {made}")


def _reproduce(args: argparse.Namespace) -> None:
    from vae_lib.tools.reproduce import report_shipped, reproduce, write_figures

    args.recipes = args.recipes or list(SHIPPED_RECIPES)
    unknown = sorted(set(args.recipes) - set(SHIPPED_RECIPES))
    if unknown:
        raise ValueError(f"unknown recipes {unknown}: choose from {', '.join(SHIPPED_RECIPES)}")
    if args.report_only:
        for name in args.recipes:
            report_shipped(name, say)
        write_figures(args.recipes)
    else:
        reproduce(args.recipes, say)


def _prepare_data(args: argparse.Namespace) -> None:
    folder = prepare_dataset(args.dataset, report=say)
    for train in (True, False):  # read as training will read them: format, shapes and labels (md5 where known)
        load_dataset(args.dataset, train=train)
    print(f"{dataset_entry(args.dataset).title} ready in {folder}/ (checked)")


def _student_notebooks(args: argparse.Namespace) -> None:
    from vae_lib.course.student import write_student_notebooks

    for path in write_student_notebooks(Path(args.notebooks)):
        print(f"wrote {path}")


def _settle_progress_bars(args: argparse.Namespace) -> None:
    from vae_lib.course.progress_bars import settle_notebook_files

    paths = [Path(path) for path in args.notebooks] or sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
    for path, changed in settle_notebook_files(paths).items():
        print(f"{path}: {counted(changed, 'progress bar text')} set to the final state")


# The benchmarks with options that only they read: the options, and how to choose that benchmark.
SPEED_BENCHMARK = "the speed benchmark"
BENCHMARK_ONLY_OPTIONS = {
    "--time-to-quality": (("--to-the-end", "--fast-epochs", "--racers"), "with --time-to-quality 2d (or 8d)"),
    SPEED_BENCHMARK: (("--steps", "--reference"), "without --time-to-quality and --profile"),
}


def _check_benchmark_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, as a usage error, an option the chosen benchmark would ignore."""
    chosen = "--time-to-quality" if args.time_to_quality else "--profile" if args.profile else SPEED_BENCHMARK
    for kind, (options, how) in BENCHMARK_ONLY_OPTIONS.items():
        for option in options:
            if kind != chosen and getattr(args, option[2:].replace("-", "_")) not in (None, False):
                parser.error(f"{option} only applies to {kind}, not to {chosen}: use it {how}, or leave it out")
    if args.racers and len(args.time_to_quality) > 1:
        parser.error("--racers races to one target: give --time-to-quality one model (2d or 8d)")


def _benchmark(args: argparse.Namespace) -> None:
    from vae_lib.tools.benchmark import (
        check_reference,
        compare_with_reference,
        profile_epoch,
        run_benchmark,
        time_to_quality,
    )

    if args.profile:
        profile_epoch(say, recipe=args.profile, device=args.device)
        return
    if args.time_to_quality:
        racers = tuple(args.racers) if args.racers else None
        options = {"to_the_end": args.to_the_end, "fast_epochs": args.fast_epochs, "racers": racers}
        for name in args.time_to_quality:
            time_to_quality(name, say, device=args.device, **options)
        return
    if args.reference:
        check_reference(Path(args.reference))  # before the benchmark, not after it
    run_benchmark(say, device=args.device, **({"steps": args.steps} if args.steps else {}))
    if args.reference:
        compare_with_reference(Path(args.reference), say)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for every command."""
    parser = argparse.ArgumentParser(prog="python -m vae_lib", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    _add_training_commands(commands)
    _add_checkpoint_commands(commands)
    _add_measuring_commands(commands)
    return parser


def _add_training_commands(commands: argparse._SubParsersAction) -> None:
    """Add the commands that train: train, sweep and video."""
    train = commands.add_parser("train", help="train a VAE (resumes if --out already holds a checkpoint)")
    train.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="start from a shipped model's recorded settings (2d, 8d, bernoulli, cvae-2d), their faster versions "
        "(2d-fast, 8d-fast) or the five-minute 2d-lab (see the README's Speed section); options given beside it "
        "override them",
    )
    train.add_argument("--out", help="run folder (default outputs/runs/<recipe> or outputs/runs/<latent-dim>d)")
    train.add_argument("--device", help=DEVICE_HELP)
    train.add_argument("--threads", type=_integer_at_least(1), help=TRAIN_THREADS_HELP)
    snapshots = "record latent-space snapshots every STEPS steps and at each epoch end, for videos"
    train.add_argument("--snapshot-every", type=_integer_at_least(0), default=0, metavar="STEPS", help=snapshots)
    add_config_options(train)
    train.set_defaults(run=_train)

    about_sweep = (
        "train the KL-weight sweep of notebook 06 in outputs/runs/sweep/ (resumes; about 20 CPU-minutes a point) "
        "and ship its models as outputs/checkpoints/sweep_*.pt, replacing those there"
    )
    sweep = commands.add_parser("sweep", help=about_sweep, description=about_sweep)
    sweep.add_argument(
        "--latent-dims",
        type=_integer_at_least(1),
        nargs="+",
        default=list(SWEEP_LATENT_DIMS),
        help=f"latent sizes to train (default: {' '.join(map(str, SWEEP_LATENT_DIMS))})",
    )
    sweep.add_argument(
        "--alphas",
        type=float,
        nargs="+",
        default=list(SWEEP_ALPHAS),
        help=f"KL weights to train (default: {' '.join(map(str, SWEEP_ALPHAS))})",
    )
    sweep.add_argument("--device", help=DEVICE_HELP)
    sweep.set_defaults(run=_sweep)

    video = commands.add_parser("video", help="turn a run's snapshots into an mp4 (and a GIF)")
    video.add_argument(
        "run_dir", help="a run folder trained with snapshots; the video is written there as latent_evolution.mp4"
    )
    video.add_argument("--fps", type=_frame_rate, default=12, help=f"frames a second, 1 to {MAX_FPS} (default: 12)")
    video.add_argument("--gif", action="store_true", help="also write a GIF for READMEs")
    video.set_defaults(run=_video)


def _add_checkpoint_commands(commands: argparse._SubParsersAction) -> None:
    """Add the commands about checkpoints and data: evaluate, reproduce and prepare-data."""
    evaluate_command = commands.add_parser("evaluate", help="print a checkpoint's test metrics")
    evaluate_command.add_argument("checkpoint", help="a checkpoint file, or a run folder (for its checkpoint.pt)")
    evaluate_command.add_argument("--device", help=DEVICE_HELP)
    evaluate_command.add_argument("--seed", type=_seed, default=0, help="seed of the sampled z")
    evaluate_command.add_argument(
        "--log-likelihood",
        type=_integer_at_least(1),
        default=0,
        metavar="IMAGES",
        help="also bound log p(x) on the first IMAGES test images with k = 1, 10, ... importance samples",
    )
    evaluate_command.add_argument(
        "--samples",
        type=_sample_count,
        metavar="K",
        help="importance samples per image for --log-likelihood, at most the largest k; bounds are printed for "
        f"k = {', '.join(map(str, BOUND_SAMPLE_COUNTS))} up to K (default: {BOUND_OPTION_DEFAULTS['samples']}; "
        "5000 for the published tables)",
    )
    evaluate_command.add_argument(
        "--workers",
        type=_integer_at_least(1),
        help="processes for --log-likelihood, one thread each (the result does not depend on it; default: "
        f"{BOUND_OPTION_DEFAULTS['workers']})",
    )
    evaluate_command.add_argument(
        "--bounds-file",
        metavar="FILE",
        help="save --log-likelihood's per-image bounds to FILE as they are computed; run again to continue",
    )
    evaluate_command.set_defaults(run=_evaluate, check_options=partial(_check_evaluate_options, evaluate_command))

    about_reproduce = (
        "retrain the shipped 2-D and 8-D models from their recipes (CPU-hours), ship them to outputs/ and report"
    )
    reproduce_command = commands.add_parser("reproduce", help=about_reproduce, description=about_reproduce)
    reproduce_command.add_argument(
        "recipes",
        nargs="*",
        metavar="RECIPE",
        help=f"the recipes to reproduce: {', '.join(SHIPPED_RECIPES)} (default: all)",
    )
    reproduce_command.add_argument(
        "--report-only", action="store_true", help="only print the shipped models' metrics and redraw their figures"
    )
    reproduce_command.set_defaults(run=_reproduce)

    prepare = commands.add_parser("prepare-data", help="download and check a dataset")
    prepare.add_argument(
        "dataset", choices=list(DATASETS), help="downloaded if it can be, else checked where you put it"
    )
    prepare.set_defaults(run=_prepare_data)


def _add_measuring_commands(commands: argparse._SubParsersAction) -> None:
    """Add the benchmark and the student-notebook generator."""
    benchmark = commands.add_parser("benchmark", help="measure training speed against this machine's matmul rate")
    benchmark.add_argument(
        "--steps", type=_integer_at_least(1), help="training steps the speed benchmark times (default: 400)"
    )
    benchmark.add_argument("--device", help=DEVICE_HELP)
    benchmark.add_argument("--threads", type=_integer_at_least(1), help=THREADS_HELP)
    kind = benchmark.add_mutually_exclusive_group()
    kind.add_argument(
        "--time-to-quality",
        nargs="+",
        choices=("2d", "8d"),
        metavar="RECIPE",
        help="instead, race the shipped recipe (2d or 8d) against its -fast version to a test reconstruction "
        f"({', '.join(f'{name}: {target.recon}' for name, target in QUALITY_TARGETS.items())}) and print both times "
        "and their ratio (tens of minutes each)",
    )
    benchmark.add_argument(
        "--reference",
        metavar="DIR",
        help="also time an epoch of the reference implementation's trainer (a clone of its repository in DIR) "
        "against an epoch of this project's train command",
    )
    benchmark.add_argument(
        "--to-the-end", action="store_true", help="with --time-to-quality: train both recipes to their last epoch"
    )
    benchmark.add_argument(
        "--fast-epochs",
        type=_integer_at_least(1),
        metavar="N",
        help="with --time-to-quality: train the -fast recipe for N epochs (its cosine schedule decays over them)",
    )
    benchmark.add_argument(
        "--racers",
        nargs="+",
        choices=sorted(RECIPES),
        metavar="RECIPE",
        help="with --time-to-quality: race these recipes instead (the first stops at the target, the others train "
        "to their end), e.g. --racers 2d-fast 2d-lab",
    )
    kind.add_argument(
        "--profile",
        choices=sorted(RECIPES),
        metavar="RECIPE",
        help="instead, profile one epoch of RECIPE (e.g. 2d-fast) and print where its time goes",
    )
    benchmark.set_defaults(run=_benchmark, check_options=partial(_check_benchmark_options, benchmark))

    student = commands.add_parser(
        "student-notebooks", help="write the student notebooks (solutions removed) into notebooks/student/"
    )
    student.add_argument("--notebooks", default=str(REPO_ROOT / "notebooks"), help="the instructor notebooks' folder")
    student.set_defaults(run=_student_notebooks)

    settle = commands.add_parser(
        "settle-progress-bars",
        help="after executing notebooks for commit: make each progress bar's saved text its final state "
        "(what viewers without widgets show)",
    )
    settle.add_argument("notebooks", nargs="*", help="notebook files (default: the instructor notebooks)")
    settle.set_defaults(run=_settle_progress_bars)


def _memory_shortage(error: BaseException) -> str | None:
    """Return the first line of an allocation that failed (a MemoryError, or torch's "can't allocate memory" for a
    model or batch too large for this machine, --latent-dim 100000000), or None for any other error."""
    text = str(error).strip()
    if isinstance(error, MemoryError) or "can't allocate memory" in text:
        return text.splitlines()[0] if text else type(error).__name__
    return None


def main(argv: list[str] | None = None) -> int:
    """Run a command; errors the user can fix print one clear line and exit with status 2."""
    args = build_parser().parse_args(argv)
    if hasattr(args, "check_options"):
        args.check_options(args)
    try:
        with _cpu_threads(getattr(args, "threads", None)):
            args.run(args)
    except BrokenPipeError:  # the reader of the output went away (`... | head`): stopped, not failed on bad input
        with contextlib.suppress(OSError, ValueError):  # (a stdout without a file descriptor has nothing to flush)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes it
        print(
            f"stopped: the output of python -m vae_lib {args.command} was closed by its reader (| head?); what it "
            "saved stays",
            file=sys.stderr,
        )
        return 1
    except (DataError, CheckpointError, TrainingDivergedError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as error:
        shortage = _memory_shortage(error)
        if shortage is None:
            raise
        print(f"error: not enough memory ({shortage}): choose a smaller model or batch", file=sys.stderr)
        return 2
    except TrainingInterrupted as interrupt:
        print(f"stopped, {interrupt}: run the same command to resume", file=sys.stderr)
        return 130
    except CommandInterrupted as interrupt:
        print(f"stopped {interrupt}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        stopped = (
            "stopped before training began; nothing was changed"
            if args.command == "train"
            else f"stopped: python -m vae_lib {args.command} was interrupted before it finished"
        )
        print(stopped, file=sys.stderr)
        return 130
    return 0
