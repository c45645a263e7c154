"""Speed figures measured in one run and reported as text: seconds per epoch, samples/s, the model's GFLOP/s as a
fraction of an fp32 4096 x 4096 matmul, the cost of recording snapshots (as a ratio of two runs), the time to draw
and encode a 200-frame video, the latency of one explorer slider update and of one drawing-pad stroke.
"""

from __future__ import annotations

import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vae_lib.core.config import RECIPES, TrainConfig
from vae_lib.core.data import ImageDataset, to_model_input
from vae_lib.core.datasets import DEFAULT_DATASET, load_dataset
from vae_lib.core.device import (
    NATIVE_BF16_FLAGS,
    autocast_dtype,
    cpu_flags,
    has_native_bf16,
    keep_freed_memory,
    malloc_is_glibcs,
    numerics_name,
    place_model,
    threads_described,
)
from vae_lib.core.evaluate import evaluate
from vae_lib.core.files import last_error_line
from vae_lib.core.hooks import TrainingHook
from vae_lib.core.model import IMAGE_SIZE, VAE, ConditionalVAE
from vae_lib.core.objective import DEFAULT_ALPHA
from vae_lib.core.optimizer import OPTIMIZER_SCOPE, Adam
from vae_lib.core.run_folder import RunFolder, clear_run
from vae_lib.core.settings import data_dir
from vae_lib.core.train import PROFILE_SCOPES, Trainer, global_random_state, set_global_random_state, train_step
from vae_lib.core.words import counted
from vae_lib.course.shipped import QUALITY_TARGETS
from vae_lib.pictures.snapshots import SNAPSHOT_EVERY, SnapshotRecorder

Report = Callable[[str], None]

MATMUL_SIZE = 4096
# Where bf16 is not native (no AVX512-BF16 or AMX) torch emulates it at about 1.4 GFLOP/s (an AVX2 AMD EPYC, family
# 25 model 1), where a 4096 x 4096 product would take 100 s a time: the benchmark times that one at this size.
EMULATED_MATMUL_SIZE = 512


class StepClock(TrainingHook):
    """Measures the seconds from the start of fit() to the end of its last optimisation step.

    The epoch's test pass comes after that step, so it is left out without subtracting a separate timing of it.
    """

    def __init__(self) -> None:
        self.started = 0.0
        self.seconds = 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.started = time.perf_counter()

    def on_step_end(self, trainer: Trainer) -> None:
        self.seconds = time.perf_counter() - self.started


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """Return the CPU's model name, family and model numbers, and whether it computes bf16 natively (AVX512-BF16
    or AMX), from /proc/cpuinfo. The numbers tell apart CPUs that a virtual machine names alike."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return "unknown CPU (no /proc/cpuinfo)"

    def first(key: str) -> str | None:
        return next((line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == key), None)

    name, family, model = first("model name") or "unknown CPU", first("cpu family"), first("model")
    numbers = f" (family {family}, model {model})" if family and model else ""
    native = sorted(cpu_flags(cpuinfo) & NATIVE_BF16_FLAGS)
    return f"{name}{numbers}, native bf16: {'yes (' + ', '.join(native) + ')' if native else 'no'}"


class HypervisorSteal:
    """Measures over a `with` block the share of this virtual machine's CPU time that its hypervisor gave to other
    machines ("steal", the eighth figure of /proc/stat's cpu line). A timing taken at high steal is slower for
    reasons outside the code (one round of compare_with_reference at 40-50 % steal took 1.9x another), so the
    benchmarks print it beside their timings. `share` stays None where /proc/stat is missing (not Linux)."""

    def __init__(self, stat: Path = Path("/proc/stat")) -> None:
        self.stat, self.share = stat, None
        self._start: tuple[int, int] | None = None

    def __enter__(self) -> HypervisorSteal:
        self._start = _stolen_and_total(self.stat)
        return self

    def __exit__(self, *exception: object) -> None:
        end = _stolen_and_total(self.stat)
        if self._start is not None and end is not None and end[1] > self._start[1]:
            self.share = (end[0] - self._start[0]) / (end[1] - self._start[1])

    def described(self) -> str:
        """Return the share in words to follow a timing ('; hypervisor steal 3 %'), or nothing if unknown."""
        return "" if self.share is None else f"; hypervisor steal {self.share:.0%}"


def _stolen_and_total(stat: Path) -> tuple[int, int] | None:
    """Return the (stolen, total) CPU time of all CPUs so far, in clock ticks, from /proc/stat; None if unreadable.
    The total is user + nice + system + idle + iowait + irq + softirq + steal (guest time is inside user)."""
    try:
        fields = stat.read_text().splitlines()[0].split()
        ticks = [int(value) for value in fields[1:9]]
    except (OSError, IndexError, ValueError):
        return None
    return (ticks[7], sum(ticks)) if fields[0] == "cpu" and len(ticks) == 8 else None


def matmul_gflops(repeats: int = 3, dtype: torch.dtype = torch.float32, size: int = MATMUL_SIZE) -> float:
    """Return the best GFLOP/s of a `size` x `size` matmul (4096 by default) in `dtype` over `repeats` runs on the
    CPU."""
    a, b = (torch.randn(size, size).to(dtype) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def training_gflop_per_image(model: VAE) -> float:
    """Return GFLOP per image for one training step: 2 FLOP per multiply-add forward, backward twice that."""
    multiply_adds = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal multiply_adds
        if isinstance(module, nn.Linear):
            multiply_adds += module.in_features * module.out_features
        elif isinstance(module, nn.Conv2d):
            multiply_adds += output[0].numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.ConvTranspose2d):
            multiply_adds += inputs[0][0].numel() * module.out_channels * module.kernel_size[0] * module.kernel_size[1]

    handles = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, model.channels, IMAGE_SIZE, IMAGE_SIZE))
    for handle in handles:
        handle.remove()
    return 3 * 2 * multiply_adds / 1e9


# What the ops of a training step are counted as, the first whose test an op passes; `scopes` are the names of the
# profiler ranges around the op (Adam's step and zero_grad record their own), innermost first.
STEP_PARTS: tuple[tuple[str, Callable[[str, list[str]], bool]], ...] = (
    (
        "optimizer (Adam step, zero_grad)",
        lambda op, scopes: any(name.startswith(OPTIMIZER_SCOPE) for name in [op, *scopes]),
    ),
    ("convolutions, backward", lambda op, scopes: "convolution_backward" in op),
    ("convolutions, forward", lambda op, scopes: "conv" in op),
    ("linear layers", lambda op, scopes: op in ("aten::mm", "aten::addmm", "aten::linear")),
    ("batch norm", lambda op, scopes: "batch_norm" in op),
    ("ReLU", lambda op, scopes: op in ("aten::relu", "aten::clamp_min", "aten::threshold_backward")),
    ("copies and layout changes", lambda op, scopes: "copy" in op or op in ("aten::contiguous", "aten::clone")),
    ("the rest (loss, sampling z, autograd bookkeeping)", lambda op, scopes: True),
)


def profile_epoch(
    report: Report, recipe: str = "2d-fast", steps: int | None = None, device: str | None = None
) -> dict[str, float]:
    """Profile one epoch of `recipe` as the Trainer runs it (or its first `steps` steps) and report where its time
    goes: the batches, the training step split by kind of op, the weight average, the test passes and the saving,
    in seconds per epoch; and the rate of the convolutions and linear layers against this CPU's matmul.

    Return seconds per epoch by part (and by part of the step), the step's GFLOP/s and that rate's fraction of the
    4096 x 4096 fp32 matmul's. The profiler's own cost per op (microseconds) is in the figures.
    """
    config = RECIPES[recipe]
    if steps is not None:
        config = replace(config, train_subset=steps * config.batch_size, log_every=min(config.log_every, steps))
    train_data, test_data = load_dataset(config.dataset, train=True), load_dataset(config.dataset, train=False)
    data = {"train_data": train_data, "test_data": test_data, "device": device, "progress": False}
    Trainer(replace(config, train_subset=20 * config.batch_size, epoch_test_images=256), **data).fit(1)  # warm up
    trainer = Trainer(config, **data)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        started = time.perf_counter()
        trainer.fit(1)
        epoch_seconds = time.perf_counter() - started
    seconds = _seconds_by_part(profiler.events())
    figures = {"epoch_seconds": epoch_seconds, "steps": trainer.steps_per_epoch} | seconds
    compute = seconds["convolutions, forward"] + seconds["convolutions, backward"] + seconds["linear layers"]
    gflop = training_gflop_per_image(trainer.model) * config.batch_size * trainer.steps_per_epoch
    matmul_dtype = autocast_dtype(config.precision, trainer.device) or torch.float32
    figures |= {"conv_linear_gflops": gflop / compute, "matmul_gflops": matmul_gflops(dtype=matmul_dtype)}
    figures |= gap_to_matmul_peak(figures, gflop)
    _report_profile(figures, recipe, numerics_name(config.precision, trainer.device), report)
    return figures


def gap_to_matmul_peak(figures: dict[str, float], gflop: float) -> dict[str, float]:
    """Split a profiled epoch's seconds into what it would take if its convolutions and linear layers (`gflop` in
    all) ran at the matmul's peak, and the three parts of the rest: those layers running below that peak, the
    step's other ops (none of them a matmul), and the work outside the step. The four add up to the epoch."""
    compute = figures["convolutions, forward"] + figures["convolutions, backward"] + figures["linear layers"]
    step = sum(figures[part] for part, _ in STEP_PARTS)
    at_peak = gflop / figures["matmul_gflops"]
    return {
        "at_matmul_peak": at_peak,
        "gap_conv_linear_below_peak": compute - at_peak,
        "gap_other_step_ops": step - compute,
        "gap_outside_step": figures["epoch_seconds"] - step,
    }


def _seconds_by_part(events: list) -> dict[str, float]:
    """Return the self CPU seconds of a profiled epoch by part: PROFILE_SCOPES' ranges, the step by STEP_PARTS,
    and what falls in no range ("outside")."""
    totals = {name: 0.0 for name in PROFILE_SCOPES} | {part: 0.0 for part, _ in STEP_PARTS} | {"outside": 0.0}
    scope_of = {label: name for name, label in PROFILE_SCOPES.items()}
    for event in events:
        scopes, parent = [], event.cpu_parent
        while parent is not None:
            scopes.append(parent.name)
            parent = parent.cpu_parent
        if event.name in scope_of:  # a range's own bookkeeping
            scopes.insert(0, event.name)
        scope = next((scope_of[name] for name in scopes if name in scope_of), "outside")
        if scope == "step":
            scope = next(part for part, test in STEP_PARTS if test(event.name, scopes))
        totals[scope] += event.self_cpu_time_total / 1e6
    return totals


def _report_profile(figures: dict[str, float], recipe: str, numerics: str, report: Report) -> None:
    """Report profile_epoch's figures as a table of seconds per epoch."""
    total = figures["epoch_seconds"]
    settings = f"{figures['steps']:.0f} steps, {numerics}, {threads_described()}"
    report(f"one epoch of the {recipe} recipe ({settings}), profiled: {total:.1f} s")
    step_parts = [part for part, _ in STEP_PARTS]
    step_seconds = sum(figures[part] for part in step_parts)
    rows = [("batches (indexing, binarising, to float)", figures["batch"]), ("training step", step_seconds)]
    rows += [(f"  {part}", figures[part]) for part in step_parts]
    rows += [
        ("weight average", figures["average"]),
        ("test passes", figures["test"]),
        ("saving the checkpoint", figures["save"]),
        ("outside these (the loop, learning rate, loss records)", figures["outside"]),
    ]
    for name, seconds in rows:
        report(f"  {name:56s} {seconds:7.2f} s  {seconds / total:6.1%}")
    rate, peak = figures["conv_linear_gflops"], figures["matmul_gflops"]
    report(
        f"  convolutions and linear layers: {rate:.1f} GFLOP/s, {rate / peak:.0%} of a {numerics} matmul's {peak:.1f}"
    )
    report(f"the epoch against the matmul's peak ({total:.1f} s):")
    for name, key in (
        ("the convolutions and linear layers at the matmul's peak", "at_matmul_peak"),
        ("gap: the same layers running below that peak", "gap_conv_linear_below_peak"),
        ("gap: the step's other ops (batch norm, ReLU, Adam, ...)", "gap_other_step_ops"),
        ("gap: outside the step (batches, average, tests, profiler)", "gap_outside_step"),
    ):
        report(f"  {name:56s} {figures[key]:7.2f} s  {figures[key] / total:6.1%}")


def time_video(run_dir: Path, frame_count: int = 200) -> float:
    """Return the seconds to draw and encode `frame_count` frames of a run's snapshots (cycled) as mp4."""
    from vae_lib.pictures.video import frames_of_run, write_mp4

    started = time.perf_counter()
    snapshots, renderer = frames_of_run(run_dir)
    frames = (renderer.render(snapshots[index % len(snapshots)]) for index in range(frame_count))
    write_mp4(frames, run_dir / "benchmark.mp4")
    return time.perf_counter() - started


def explorer_latency_ms(model: VAE, test_data: ImageDataset, updates: int = 200) -> tuple[float, float]:
    """Return the median and 95th percentile milliseconds of one slider move (decode and redraw) in the explorer."""
    from vae_lib.pictures.explorer import LatentExplorer

    explorer = LatentExplorer(model.eval(), test_data)
    values = np.random.default_rng(0).uniform(-2.5, 2.5, size=updates)
    times = []
    for index, value in enumerate(values):
        slider = explorer.sliders[index % len(explorer.sliders)]
        started = time.perf_counter()
        slider.value = round(float(value), 2)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), float(np.percentile(times, 95))


def drawing_pad_latency_ms(
    model: VAE, conditional_model: ConditionalVAE, test_data: ImageDataset, updates: int = 200, seed: int = 0
) -> tuple[float, float]:
    """Return the median and 95th percentile milliseconds from a stroke's pixels reaching the Python side of the
    drawing pad to every view updated (the 28 x 28 image, the latent point, the reconstruction, the conditional
    model's guess and its ten rewrites), over `updates` drawings of three random strokes each."""
    from vae_lib.core.drawing import PAD_SIZE, draw_strokes
    from vae_lib.pictures.drawing_pad import DrawingExplorer

    explorer = DrawingExplorer(model.eval(), test_data, conditional_model.eval())
    rng = np.random.default_rng(seed)
    drawings = [draw_strokes(rng.uniform(30, PAD_SIZE - 30, size=(3, 4, 2)).tolist()).tobytes() for _ in range(updates)]
    times = []
    for pixels in drawings:
        started = time.perf_counter()
        explorer.pad.pixels = pixels  # what the browser's message sets; the pad's observer updates every view
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), float(np.percentile(times, 95))


def layout_step_ratio(batch: torch.Tensor, autocast: torch.dtype | None, rounds: int = 40) -> float:
    """Return the CPU time of training steps on a VAE placed as training places it (channels-last kept across
    the flatten) over that of the same steps on one only moved to channels-last; 3 steps of each in turn."""
    models = [VAE(latent_dim=2).to(memory_format=torch.channels_last), place_model(VAE(latent_dim=2), "cpu")]
    optimizers = [Adam(model.parameters()) for model in models]
    seconds = [0.0, 0.0]
    for round_index in range(rounds + 1):
        for index in (0, 1) if round_index % 2 == 0 else (1, 0):
            started = time.process_time()
            for _ in range(3):
                train_step(models[index], optimizers[index], batch, DEFAULT_ALPHA, autocast)
            seconds[index] += (time.process_time() - started) if round_index else 0.0  # round 0 warms up
    return seconds[1] / seconds[0]


def step_costs(keep: bool, steps: int, precisions: tuple[str, ...] = ("fp32", "auto")) -> dict[str, dict]:
    """Return, for each precision, the CPU seconds and minor page faults (pages the kernel mapped in afresh) per
    training step of the 2-D VAE at batch 64, in this process, after keep_freed_memory() if `keep`. Call it in a
    fresh process: keeping freed memory holds for the rest of the process and cannot be undone."""
    if keep and not keep_freed_memory():
        raise RuntimeError("keep_freed_memory() needs glibc's malloc (Linux), which this process does not use")
    batch = torch.rand(TrainConfig().batch_size, 1, IMAGE_SIZE, IMAGE_SIZE) * 2 - 1
    costs = {}
    for precision in precisions:
        torch.manual_seed(0)
        model = place_model(VAE(latent_dim=2), "cpu")
        optimizer, autocast = Adam(model.parameters()), autocast_dtype(precision, "cpu")
        for _ in range(5):  # warm up: oneDNN picks its kernels, the heap grows to a step's size
            train_step(model, optimizer, batch, DEFAULT_ALPHA, autocast)
        faults, started = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
        for _ in range(steps):
            train_step(model, optimizer, batch, DEFAULT_ALPHA, autocast)
        costs[precision] = {
            "cpu_seconds": (time.process_time() - started) / steps,
            "page_faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps,
        }
    return costs


STEP_COSTS = "import json, sys; from vae_lib.tools.benchmark import step_costs; import torch; " + (
    "torch.set_num_threads(int(sys.argv[3])); print(json.dumps(step_costs(sys.argv[1] == 'keep', int(sys.argv[2]))))"
)


def freed_memory_figures(steps: int = 100, rounds: int = 2) -> dict[str, float]:
    """Return the CPU time of a training step with keep_freed_memory() over that of one without it, in fp32 and in
    the numerics `precision auto` picks, and the page faults per step of each: fresh processes at this process's
    thread count, `rounds` of each in alternating order."""
    totals = {(keep, key): 0.0 for keep in ("keep", "return") for key in ("fp32", "auto", "fp32_faults")}
    for round_index in range(rounds):
        for keep in ("return", "keep") if round_index % 2 == 0 else ("keep", "return"):
            command = [sys.executable, "-c", STEP_COSTS, keep, str(steps), str(torch.get_num_threads())]
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            costs = json.loads(result.stdout.strip().splitlines()[-1])
            totals[keep, "fp32"] += costs["fp32"]["cpu_seconds"]
            totals[keep, "auto"] += costs["auto"]["cpu_seconds"]
            totals[keep, "fp32_faults"] += costs["fp32"]["page_faults"] / rounds
    return {
        "kept_memory_step_ratio": totals["keep", "auto"] / totals["return", "auto"],
        "fp32_kept_memory_step_ratio": totals["keep", "fp32"] / totals["return", "fp32"],
        "kept_memory_page_faults": totals["keep", "fp32_faults"],
        "returned_memory_page_faults": totals["return", "fp32_faults"],
    }


def run_benchmark(
    report: Report, steps: int = 400, device: str | None = None, video_frames: int = 200, explorer_updates: int = 200
) -> dict[str, float]:
    """Train the reference implementation's model for `steps` steps on the course's dataset in fp32, in the numerics
    `precision="auto"` picks here, and with snapshots; report and return the figures."""
    config = TrainConfig()
    train_data, test_data = load_dataset(DEFAULT_DATASET, train=True), load_dataset(DEFAULT_DATASET, train=False)
    most = len(train_data) // config.batch_size
    if steps > most:
        raise ValueError(
            f"steps must be at most {most}, the steps of one epoch of the training images at batch "
            f"{config.batch_size}; got {steps}"
        )
    report(
        f"timing {steps} training steps in fp32, in the numerics precision auto picks and with snapshots, twice "
        "each; then a test pass, a video, the explorer and the drawing pad"
    )
    short_run = TrainConfig(train_subset=steps * config.batch_size)
    data = {"train_data": train_data, "test_data": test_data, "device": device, "progress": False}
    Trainer(TrainConfig(train_subset=50 * config.batch_size), **data).fit(1)  # warm up
    with HypervisorSteal() as steal:
        timings = time_short_runs(short_run, data, video_frames)
    trainer = timings.pop("trainer")
    started = time.perf_counter()
    evaluate(trainer.model, test_data)
    test_seconds = time.perf_counter() - started
    chosen = numerics_name(short_run.precision, trainer.device)  # "bf16 autocast" or "fp32"
    figures = speed_figures(timings, test_seconds, len(train_data) // config.batch_size, steps, chosen)
    if trainer.device.type == "cpu":  # CPU seconds say nothing of a GPU's time
        batch = to_model_input(train_data.images[: config.batch_size])
        layout = {
            label: layout_step_ratio(batch, autocast_dtype(label, trainer.device), rounds=max(2, steps // 10))
            for label in ("fp32", "auto")
        }
        figures |= {"layout_step_ratio": layout["auto"], "fp32_layout_step_ratio": layout["fp32"]}
        if malloc_is_glibcs():  # keep_freed_memory works there only
            figures |= freed_memory_figures(steps=max(20, steps // 4))
    for name, model in (("2d", trainer.model), ("8d", VAE(latent_dim=8))):
        median, p95 = explorer_latency_ms(model, test_data, explorer_updates)
        figures |= {f"explorer_{name}_median_ms": median, f"explorer_{name}_p95_ms": p95}
    conditional_model = replace(config, conditional=True).build_model()  # untrained: the same work as trained
    median, p95 = drawing_pad_latency_ms(trainer.model, conditional_model, test_data, explorer_updates)
    figures |= {"drawing_pad_median_ms": median, "drawing_pad_p95_ms": p95, "drawing_pad_updates": explorer_updates}
    context = (
        f"device {trainer.device}, {threads_described()}, batch {config.batch_size}, {steps} timed steps"
        f"{steal.described()} while they ran"
    )
    report_speed(figures, chosen, context, video_frames, report)
    return figures


def time_short_runs(short_run: TrainConfig, data: dict, video_frames: int) -> dict:
    """Time short runs in fp32 and in the numerics `precision auto` picks, then with snapshots, alternating
    (A B C A B C) so drift in the machine's speed hits each alike; time a video of the snapshots.

    Returns the best seconds per step of each numerics, the training seconds with and without snapshots, the
    video's seconds and the last plain trainer."""
    fp32_run = replace(short_run, precision="fp32")
    plain_seconds, recorded_seconds, clocks = [], [], {"auto": [], "fp32": []}
    with tempfile.TemporaryDirectory() as run_dir:
        for _ in range(2):
            for label, run in (("fp32", fp32_run), ("auto", short_run)):
                clocks[label].append(StepClock())
                trainer = Trainer(run, hooks=[clocks[label][-1]], **data)
                trainer.fit(1)  # one short epoch: training steps, step records and a full test pass
            plain_seconds.append(trainer.train_seconds)
            clear_run(run_dir)  # the round before saved its run there, which a new run refuses to overwrite
            recorder = SnapshotRecorder(run_dir, data["test_data"], every=SNAPSHOT_EVERY)
            recorded = Trainer(short_run, run_dir=run_dir, hooks=[recorder], **data)
            recorded.fit(1)
            recorded_seconds.append(recorded.train_seconds)
            snapshots = len(RunFolder(run_dir).snapshot_files())
        video_seconds = time_video(Path(run_dir), video_frames)
    steps = trainer.steps_per_epoch
    return {
        "step_seconds": {label: min(clock.seconds for clock in runs) / steps for label, runs in clocks.items()},
        "plain_seconds": sum(plain_seconds),
        "recorded_seconds": sum(recorded_seconds),
        "snapshots_per_run": snapshots,
        "video_seconds": video_seconds,
        "trainer": trainer,
    }


def speed_figures(timings: dict, test_seconds: float, epoch_steps: int, steps: int, chosen: str) -> dict[str, float]:
    """Return the benchmark's figures from the short runs' timings: an epoch's seconds, samples per second and
    their fraction of this machine's matmul rate in fp32 and in the chosen numerics, snapshot and video costs."""
    step_seconds, batch_size = timings["step_seconds"], TrainConfig().batch_size
    samples_per_second = {label: batch_size / seconds for label, seconds in step_seconds.items()}
    gflop_per_image = training_gflop_per_image(TrainConfig().build_model())
    bf16_size = MATMUL_SIZE if has_native_bf16("cpu") else EMULATED_MATMUL_SIZE
    matmul = {"fp32": matmul_gflops(), "bf16": matmul_gflops(dtype=torch.bfloat16, size=bf16_size)}
    numerics = "fp32" if chosen == "fp32" else "bf16"
    return {
        "seconds_per_epoch": epoch_steps * step_seconds["auto"] + test_seconds,
        "train_seconds_per_epoch": epoch_steps * step_seconds["auto"],
        "fp32_seconds_per_epoch": epoch_steps * step_seconds["fp32"] + test_seconds,
        "test_seconds": test_seconds,
        "samples_per_second": samples_per_second["auto"],
        "fp32_samples_per_second": samples_per_second["fp32"],
        "gflop_per_image": gflop_per_image,
        "matmul_gflops": matmul["fp32"],
        "matmul_bf16_gflops": matmul["bf16"],
        "matmul_bf16_size": bf16_size,
        "fraction_of_matmul": samples_per_second["auto"] * gflop_per_image / matmul[numerics],
        "fp32_fraction_of_matmul": samples_per_second["fp32"] * gflop_per_image / matmul["fp32"],
        "snapshot_time_ratio": timings["recorded_seconds"] / timings["plain_seconds"],
        "recorded_seconds": timings["recorded_seconds"],
        "plain_seconds": timings["plain_seconds"],
        "video_seconds": timings["video_seconds"],
        "snapshots_per_run": timings["snapshots_per_run"],
        "steps": steps,
    }


def report_speed(figures: dict[str, float], chosen: str, context: str, video_frames: int, report: Report) -> None:
    """Report the benchmark's figures as lines of text."""
    ratio = figures["samples_per_second"] / figures["fp32_samples_per_second"]
    auto = f"precision auto ({chosen})"  # the second set of timings; where auto picks fp32, the same numerics again
    report(f"CPU: {cpu_description()}")
    report(context)
    timed_twice = ": its figures below time fp32 a second time, and their ratio is the noise"
    report(f"precision auto trains in {chosen} here{timed_twice if chosen == 'fp32' else ''}")
    report(
        f"seconds per epoch (60k train + 10k test): {figures['seconds_per_epoch']:.1f} with {auto} "
        f"(train {figures['train_seconds_per_epoch']:.1f}, test {figures['test_seconds']:.1f}); "
        f"{figures['fp32_seconds_per_epoch']:.1f} with --precision fp32"
    )
    report(
        f"training samples per second: --precision fp32 {figures['fp32_samples_per_second']:.0f}, {auto} "
        f"{figures['samples_per_second']:.0f} (x{ratio:.2f})"
    )
    if "layout_step_ratio" in figures:
        report(
            f"channels-last kept across the flatten: a step takes x{figures['fp32_layout_step_ratio']:.3f} the CPU "
            f"time with --precision fp32, x{figures['layout_step_ratio']:.3f} with {auto}, of a step without it"
        )
    if "kept_memory_step_ratio" in figures:
        report(
            "freed memory kept by malloc (keep_freed_memory): a step takes "
            f"x{figures['fp32_kept_memory_step_ratio']:.3f} the CPU time with --precision fp32, "
            f"x{figures['kept_memory_step_ratio']:.3f} with {auto}, of a step whose freed memory goes back to the "
            f"kernel ({figures['kept_memory_page_faults']:.0f} against "
            f"{figures['returned_memory_page_faults']:.0f} page faults a step in fp32)"
        )
    report(f"model: {figures['gflop_per_image']:.4f} GFLOP per image (forward + backward)")
    bf16_size = figures["matmul_bf16_size"]
    bf16_rate = (
        f"bf16 {figures['matmul_bf16_gflops']:,.0f} GFLOP/s"
        if bf16_size == MATMUL_SIZE
        else f"bf16 emulated (not native on this CPU) {figures['matmul_bf16_gflops']:,.1f} GFLOP/s at {bf16_size:.0f}x"
        f"{bf16_size:.0f}"
    )
    report(
        f"{MATMUL_SIZE}x{MATMUL_SIZE} matmul: fp32 {figures['matmul_gflops']:,.0f} GFLOP/s, {bf16_rate}; "
        "training in fp32 runs at "
        f"{100 * figures['fp32_fraction_of_matmul']:.0f}% of the fp32 one"
        + (
            f", in bf16 autocast at {100 * figures['fraction_of_matmul']:.0f}% of the bf16 one"
            if chosen != "fp32"
            else ""
        )
    )
    report(
        f"snapshots every {SNAPSHOT_EVERY} steps ({figures['snapshots_per_run']} in a run of {figures['steps']} steps, "
        f"the first and the epoch's end included): training time x{figures['snapshot_time_ratio']:.3f} of the same "
        f"runs without them ({figures['recorded_seconds']:.1f} s against {figures['plain_seconds']:.1f} s, two runs "
        "each)"
    )
    report(f"drawing and encoding a {video_frames}-frame mp4: {figures['video_seconds']:.1f} s")
    report(
        f"explorer slider update (decode + redraw): 2-D median {figures['explorer_2d_median_ms']:.1f} ms, "
        f"p95 {figures['explorer_2d_p95_ms']:.1f} ms; 8-D median {figures['explorer_8d_median_ms']:.1f} ms, "
        f"p95 {figures['explorer_8d_p95_ms']:.1f} ms"
    )
    report(
        f"drawing pad, stroke end to every view updated (Python side, plain and conditional 2-D models): median "
        f"{figures['drawing_pad_median_ms']:.1f} ms, p95 {figures['drawing_pad_p95_ms']:.1f} ms over "
        f"{figures['drawing_pad_updates']:.0f} strokes"
    )


def full_test_recon(trainer: Trainer) -> float:
    """Return the trainer's test reconstruction over the whole test set after its last epoch: its own record when
    that covered every image, else a fresh evaluation (not counted in the trainer's seconds)."""
    record = trainer.history.epochs[-1]
    if record.test_images in (None, len(trainer.test_data)):
        return record.test_recon
    config = trainer.config
    return evaluate(trainer.evaluated_model, trainer.test_data, config.alpha, seed=config.seed)["recon"]


def time_to_quality(
    name: str,
    report: Report,
    target: float | None = None,
    to_the_end: bool = False,
    device: str | None = None,
    fast_epochs: int | None = None,
    racers: tuple[str, ...] | None = None,
    **changes: object,
) -> dict[str, dict[str, float | int | None]]:
    """Race recipes of the model `name` ('2d' or '8d'), an epoch of each in turn, until each reaches test
    reconstruction `target` (QUALITY_TARGETS by default). By default the racers are the shipped recipe
    ("shipped") and its -fast version ("fast"); `racers` names RECIPES to race instead, each under its own name.
    The first racer stops at the target, the others train to their end to show their final reconstruction (all
    do with `to_the_end`). Report each epoch and the table; return the figures by racer.

    Each recipe's training and own evaluation are timed twice: wall-clock seconds, and the CPU seconds this
    process spent, which other jobs on a shared machine hardly change. The whole-test-set check of a recipe's
    epochs that evaluate fewer test images is not timed. `changes` alter every recipe alike (tests use
    train_subset and epochs); `fast_epochs` gives the -fast recipe a run of that many epochs, over which its
    cosine schedule decays.
    """
    target = QUALITY_TARGETS[name].recon if target is None else target
    data = {
        "train_data": load_dataset(DEFAULT_DATASET, train=True),
        "test_data": load_dataset(DEFAULT_DATASET, train=False),
        "device": device,
        "progress": False,
    }
    labels = {recipe: recipe for recipe in racers} if racers else {"shipped": name, "fast": f"{name}-fast"}
    if len(labels) < 2 or not set(labels.values()) <= set(RECIPES):
        raise ValueError(f"race two or more different recipes of {', '.join(sorted(RECIPES))}, got {racers}")
    configs = {label: replace(RECIPES[recipe], **changes) for label, recipe in labels.items()}
    if fast_epochs is not None:
        fast = [label for label, recipe in labels.items() if recipe == f"{name}-fast"]
        if not fast:
            raise ValueError(f"--fast-epochs shortens the {name}-fast recipe, which is not among the racers {racers}")
        configs[fast[0]] = replace(configs[fast[0]], epochs=fast_epochs, keep_epochs=())
    trainers, streams = {}, {}
    for label, config in configs.items():
        trainers[label] = Trainer(config, **data)
        streams[label] = global_random_state()  # where this recipe's run alone would start drawing
    report(f"CPU: {cpu_description()}; {threads_described()}; target test recon {target}")
    cpu_seconds, reached = race(trainers, target, to_the_end, report, streams)
    figures = {label: race_figures(trainer, cpu_seconds[label], reached[label]) for label, trainer in trainers.items()}
    width = max(len(label) for label in trainers)
    for label, trainer in trainers.items():
        config, result = trainer.config, figures[label]
        epoch, seconds, cpu = result["epoch_reached"], result["seconds_to_target"], result["cpu_seconds_to_target"]
        report(
            f"{label:{width}} {numerics_name(config.precision, trainer.device):13} batch {config.batch_size:3d} "
            f"lr {config.learning_rate:.2g}: {result['cpu_seconds_per_epoch']:.1f} CPU s per epoch; "
            f"test recon {target} "
            + (f"at epoch {epoch}, {seconds:.0f} s, {cpu:.0f} CPU s" if epoch else f"not reached in {trainer.epoch}")
            + (
                f"; final ({counted(config.epochs, 'epoch')}) {result['final_recon']:.5f}"
                if result["final_recon"]
                else ""
            )
        )
    first, *others = figures
    for other in others:
        if figures[first]["epoch_reached"] and figures[other]["epoch_reached"]:
            report(
                f"time to test recon {target}, {other} / {first}: "
                f"{figures[other]['cpu_seconds_to_target'] / figures[first]['cpu_seconds_to_target']:.3f} in CPU "
                f"seconds, {figures[other]['seconds_to_target'] / figures[first]['seconds_to_target']:.3f} in "
                "wall-clock seconds"
            )
    return figures


def race(
    trainers: dict[str, Trainer],
    target: float,
    to_the_end: bool,
    report: Report,
    streams: dict[str, dict] | None = None,
) -> tuple[dict[str, float], dict[str, tuple[int, float, float] | None]]:
    """Train the trainers an epoch each in turn until each reaches `target` (all but the first to their last
    epoch, or all with `to_the_end`); return each one's CPU seconds and (epoch, seconds, CPU seconds) at the
    target, None where it was not reached.

    Each trainer draws z (and binarises) from a random stream of its own, starting from its entry in `streams`
    (by default where the global one is now), so its path does not depend on how long the others train: it is
    the path of its run alone."""
    cpu_seconds = dict.fromkeys(trainers, 0.0)
    reached: dict[str, tuple[int, float, float] | None] = dict.fromkeys(trainers)
    streams = dict(streams) if streams is not None else dict.fromkeys(trainers, global_random_state())
    first = next(iter(trainers))
    width = max(len(label) for label in trainers)
    while True:
        running = [
            label
            for label, trainer in trainers.items()
            if trainer.epoch < trainer.config.epochs and (to_the_end or label != first or reached[label] is None)
        ]
        if not running:
            return cpu_seconds, reached
        for label in running:
            trainer, started = trainers[label], time.process_time()
            set_global_random_state(streams[label])
            with HypervisorSteal() as steal:
                trainer.fit(1)
            streams[label] = global_random_state()
            cpu_seconds[label] += time.process_time() - started
            recon = full_test_recon(trainer)
            if recon <= target and reached[label] is None:
                reached[label] = (trainer.epoch, trainer.train_seconds, cpu_seconds[label])
            report(
                f"{label:{width}} epoch {trainer.epoch:3d}: {trainer.train_seconds:7.1f} s, {cpu_seconds[label]:7.1f} "
                f"CPU s, test recon {recon:.5f}{steal.described()}"
            )


def race_figures(
    trainer: Trainer, cpu_seconds: float, reached: tuple[int, float, float] | None
) -> dict[str, float | int | None]:
    """Return one racer's figures: its settings, when it reached the target, its CPU seconds per epoch and, if it
    finished its schedule, its final test reconstruction."""
    epoch, seconds, cpu = reached or (None, None, None)
    finished = trainer.epoch == trainer.config.epochs
    return {
        "batch_size": trainer.config.batch_size,
        "learning_rate": trainer.config.learning_rate,
        "epoch_reached": epoch,
        "seconds_to_target": seconds,
        "cpu_seconds_to_target": cpu,
        "cpu_seconds_per_epoch": cpu_seconds / trainer.epoch,
        "final_recon": full_test_recon(trainer) if finished else None,
    }


# One epoch of the reference implementation's own trainer (ModularTrainer, with its logging, plots, video frames
# and checkpoints), on MNIST loaded as its MNIST loader did; run in a child process from a clone of its repository.
# Its arguments: the clone, the data folder and (REFERENCE_EPOCH only) torch's thread count.
REFERENCE_IMPORTS = """
import sys, time
import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms
sys.path.insert(0, sys.argv[1])
from trainer import ModularTrainer
from utils import VAELoss, VariationalAutoencoder
"""
REFERENCE_EPOCH = (
    REFERENCE_IMPORTS
    + """
torch.set_num_threads(int(sys.argv[3]))
transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5), (0.5))])
loader = dict(
    batch_size=64, num_workers=10, pin_memory=True, persistent_workers=True, prefetch_factor=2, drop_last=True
)
train_loader = DataLoader(datasets.MNIST(sys.argv[2], train=True, transform=transform), shuffle=True, **loader)
test_loader = DataLoader(datasets.MNIST(sys.argv[2], train=False, transform=transform), shuffle=False, **loader)
model = VariationalAutoencoder(latent_dim=2)
trainer = ModularTrainer(
    model=model, train_loader=train_loader, test_loader=test_loader, loss_fn=VAELoss(alpha=0.001),
    optimizer=torch.optim.Adam(params=model.parameters(), lr=1e-3), log_path="logs/train.log", num_epochs=1,
    checkpoint_path="checkpoints", graph_dir="graphs", verbose=True, device="cpu",
)
trainer.train()
"""
)


def timed_command(command: list[str], cwd: Path) -> float:
    """Return the wall-clock seconds of a command run to completion in `cwd`; its output is kept only on failure."""
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ChildProcessError(
            f"{_shown(command)} failed (exit status {result.returncode}): {last_error_line(result.stderr)}"
        )
    return time.perf_counter() - started


def _shown(command: list[str]) -> str:
    """Return a command as a reader recognises it: a `python -c` script as 'python -c <script>'."""
    return " ".join("<script>" if "\n" in part else part for part in command)


CLONE_THE_REFERENCE = "clone the reference implementation (github.com/Ganesh2609/VariationalAutoencoder) there"


def check_reference(reference: Path) -> None:
    """Raise a ValueError saying what to do unless `reference` holds the reference trainer, whose modules import,
    and cv2 is installed: checked before any benchmark runs, not after it."""
    if not (reference / "trainer.py").is_file() or not (reference / "utils.py").is_file():
        raise ValueError(f"{reference} has no trainer.py and utils.py: {CLONE_THE_REFERENCE}")
    if importlib.util.find_spec("cv2") is None:
        raise ValueError("the reference trainer imports cv2: pip install opencv-python-headless, then run again")
    imported = subprocess.run(
        [sys.executable, "-c", REFERENCE_IMPORTS, str(reference.resolve())], capture_output=True, text=True
    )
    if imported.returncode != 0:
        raise ValueError(
            f"the reference trainer in {reference} cannot be imported ({last_error_line(imported.stderr)}): "
            f"{CLONE_THE_REFERENCE}, unchanged"
        )


def compare_with_reference(reference: Path, report: Report, rounds: int = 2) -> dict[str, float]:
    """Time one MNIST epoch of the reference implementation's trainer against one epoch of this project's CLI
    with the reference's settings (`train --latent-dim 2 --epochs 1`, in the numerics `precision auto` picks,
    and again with `--precision fp32`), each a whole command from start to exit at this process's torch thread
    count, in `rounds` rounds of alternating order; print and return the median seconds and the ratios. Beside
    each round it prints the hypervisor's steal and the 4096² matmul's rate just before (in the numerics
    `precision auto` picks), which shows a machine slowed down without steal. `reference` is a clone of
    github.com/Ganesh2609/VariationalAutoencoder."""
    check_reference(reference)
    rate_dtype = autocast_dtype("auto", "cpu") or torch.float32  # the numerics `precision auto` trains in here
    rate_name = "bf16" if rate_dtype == torch.bfloat16 else "fp32"
    threads = str(torch.get_num_threads())  # each command at this process's count (`benchmark --threads`)
    reference_epoch = [sys.executable, "-c", REFERENCE_EPOCH, str(reference.resolve()), str(data_dir()), threads]
    train = [sys.executable, "-m", "vae_lib", "train", "--threads", threads]
    commands = {
        "reference ModularTrainer": reference_epoch,
        "vae_lib train (precision auto)": [*train, "--latent-dim", "2"],
        "vae_lib train --precision fp32": [*train, "--precision", "fp32"],
    }
    seconds: dict[str, list[float]] = {label: [] for label in commands}
    rates = []
    for round_index in range(rounds):
        order = list(commands) if round_index % 2 == 0 else list(reversed(commands))
        for label in order:
            rates.append(matmul_gflops(repeats=2, dtype=rate_dtype))  # the machine's speed just before the command
            with tempfile.TemporaryDirectory() as work, HypervisorSteal() as steal:
                ours = ["--epochs", "1", "--out", str(Path(work) / "run")] if label.startswith("vae_lib") else []
                seconds[label].append(timed_command(commands[label] + ours, Path(work)))
            report(
                f"round {round_index + 1}: {label}: {seconds[label][-1]:.1f} s{steal.described()}; "
                f"{rate_name} matmul {rates[-1]:,.0f} GFLOP/s just before"
            )
    medians = {label: statistics.median(times) for label, times in seconds.items()}
    reference_seconds = medians.pop("reference ModularTrainer")
    report(
        f"one epoch, whole command at {threads_described()}, median of {rounds}: reference {reference_seconds:.1f} s"
    )
    for label, median in medians.items():
        report(f"  {label}: {median:.1f} s, {reference_seconds / median:.2f}x faster than the reference")
    report(
        f"the {rate_name} matmul ran at {min(rates):,.0f}-{max(rates):,.0f} GFLOP/s before the commands: a round "
        "after a rate well below the others ran on a slowed-down machine (with or without steal), its ratios too"
    )
    return {
        "reference_seconds": reference_seconds,
        **medians,
        "matmul_gflops_low": min(rates),
        "matmul_gflops_high": max(rates),
    }
