"""Speed figures printed in one run: seconds per MNIST epoch, samples/s, the model's GFLOP/s as a fraction
of an fp32 4096 x 4096 matmul, the cost of recording snapshots (as a ratio of two runs), the time to draw
and encode a 200-frame video, and the latency of one explorer slider update.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vae_lib.config import TrainConfig
from vae_lib.data import load_dataset
from vae_lib.evaluate import evaluate
from vae_lib.model import IMAGE_SIZE, VAE
from vae_lib.snapshots import SnapshotRecorder
from vae_lib.train import Trainer, TrainingHook

MATMUL_SIZE = 4096


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


def cpu_description() -> str:
    """Return the CPU's model name and whether it computes bf16 natively (AVX512-BF16 or AMX), from /proc/cpuinfo."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU (no /proc/cpuinfo)"
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    native = sorted(flags & {"avx512_bf16", "amx_bf16"})
    return f"{model}, native bf16: {'yes (' + ', '.join(native) + ')' if native else 'no'}"


def matmul_gflops(repeats: int = 3, dtype: torch.dtype = torch.float32) -> float:
    """Return the best GFLOP/s of a 4096 x 4096 matmul in `dtype` over `repeats` runs on the CPU."""
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE).to(dtype) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * MATMUL_SIZE**3 / best / 1e9


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


def time_video(run_dir: Path, frame_count: int = 200) -> float:
    """Return the seconds to draw and encode `frame_count` frames of a run's snapshots (cycled) as mp4."""
    from vae_lib.video import frames_of_run, write_mp4

    started = time.perf_counter()
    snapshots, renderer = frames_of_run(run_dir)
    frames = (renderer.render(snapshots[index % len(snapshots)]) for index in range(frame_count))
    write_mp4(frames, run_dir / "benchmark.mp4")
    return time.perf_counter() - started


def explorer_latency_ms(model: VAE, test_data, updates: int = 200) -> tuple[float, float]:
    """Return the median and 95th percentile milliseconds of one slider move (decode and redraw) in the explorer."""
    from vae_lib.explorer import LatentExplorer

    explorer = LatentExplorer(model.eval(), test_data)
    values = np.random.default_rng(0).uniform(-2.5, 2.5, size=updates)
    times = []
    for index, value in enumerate(values):
        slider = explorer.sliders[index % len(explorer.sliders)]
        started = time.perf_counter()
        slider.value = round(float(value), 2)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), float(np.percentile(times, 95))


def run_benchmark(
    steps: int = 400, device: str | None = None, video_frames: int = 200, explorer_updates: int = 200
) -> dict[str, float]:
    """Train the seed's model for `steps` steps on MNIST (with and without snapshots); print and return the figures."""
    config = TrainConfig()
    train_data, test_data = load_dataset("mnist", train=True), load_dataset("mnist", train=False)
    full_epoch_steps = len(train_data) // config.batch_size
    short_run = TrainConfig(train_subset=steps * config.batch_size)
    data = {"train_data": train_data, "test_data": test_data, "device": device, "progress": False}
    Trainer(TrainConfig(train_subset=50 * config.batch_size), **data).fit(1)
    # Runs without and with snapshots alternate (A B A B), so drift in the machine's speed hits both alike.
    plain_seconds, recorded_seconds, step_clocks = [], [], []
    with tempfile.TemporaryDirectory() as run_dir:
        for _ in range(2):
            step_clocks.append(StepClock())
            trainer = Trainer(short_run, hooks=[step_clocks[-1]], **data)
            trainer.fit(1)  # one short epoch: training steps, step records and a full test pass
            plain_seconds.append(trainer.train_seconds)
            recorder = SnapshotRecorder(run_dir, test_data, every=200)
            recorded = Trainer(short_run, run_dir=run_dir, hooks=[recorder], **data)
            recorded.fit(1)
            recorded_seconds.append(recorded.train_seconds)
        snapshot_ratio = sum(recorded_seconds) / sum(plain_seconds)
        video_seconds = time_video(Path(run_dir), video_frames)
    step_seconds = min(clock.seconds for clock in step_clocks) / steps
    started = time.perf_counter()
    evaluate(trainer.model, test_data.images)
    test_seconds = time.perf_counter() - started
    samples_per_second = config.batch_size / step_seconds
    gflop_per_image = training_gflop_per_image(config.build_model())
    model_gflops = samples_per_second * gflop_per_image
    matmul, matmul_bf16 = matmul_gflops(), matmul_gflops(dtype=torch.bfloat16)
    latency_2d = explorer_latency_ms(trainer.model, test_data, explorer_updates)
    latency_8d = explorer_latency_ms(VAE(latent_dim=8), test_data, explorer_updates)
    figures = {
        "seconds_per_epoch": full_epoch_steps * step_seconds + test_seconds,
        "train_seconds_per_epoch": full_epoch_steps * step_seconds,
        "test_seconds": test_seconds,
        "samples_per_second": samples_per_second,
        "gflop_per_image": gflop_per_image,
        "model_gflops": model_gflops,
        "matmul_gflops": matmul,
        "matmul_bf16_gflops": matmul_bf16,
        "fraction_of_matmul": model_gflops / matmul,
        "snapshot_time_ratio": snapshot_ratio,
        "video_seconds": video_seconds,
        "explorer_2d_median_ms": latency_2d[0],
        "explorer_2d_p95_ms": latency_2d[1],
        "explorer_8d_median_ms": latency_8d[0],
        "explorer_8d_p95_ms": latency_8d[1],
    }
    print(f"CPU: {cpu_description()}")
    print(f"device {trainer.device}, {torch.get_num_threads()} threads, batch {config.batch_size}, {steps} timed steps")
    print(
        f"seconds per epoch (60k train + 10k test): {figures['seconds_per_epoch']:.1f} "
        f"(train {figures['train_seconds_per_epoch']:.1f}, test {test_seconds:.1f})"
    )
    print(f"training samples per second: {samples_per_second:.0f}")
    print(f"model: {gflop_per_image:.4f} GFLOP per image (forward + backward) -> {model_gflops:.0f} GFLOP/s")
    print(
        f"{MATMUL_SIZE}x{MATMUL_SIZE} matmul: fp32 {matmul:.0f} GFLOP/s, bf16 {matmul_bf16:.0f} GFLOP/s; "
        f"training (fp32) runs at {100 * figures['fraction_of_matmul']:.0f}% of the fp32 one"
    )
    print(
        f"snapshots every 200 steps: training time x{snapshot_ratio:.3f} of the same runs without them "
        f"({sum(recorded_seconds):.1f} s against {sum(plain_seconds):.1f} s, two runs each)"
    )
    print(f"drawing and encoding a {video_frames}-frame mp4: {video_seconds:.1f} s")
    print(
        f"explorer slider update (decode + redraw): 2-D median {latency_2d[0]:.1f} ms, p95 {latency_2d[1]:.1f} ms; "
        f"8-D median {latency_8d[0]:.1f} ms, p95 {latency_8d[1]:.1f} ms"
    )
    return figures
