"""Speed figures printed in one run: seconds per MNIST epoch, samples/s, and the model's
GFLOP/s as a fraction of an fp32 4096 x 4096 matmul measured in the same run.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from vae_lib.config import TrainConfig
from vae_lib.data import load_dataset
from vae_lib.evaluate import evaluate
from vae_lib.model import IMAGE_SIZE, VAE
from vae_lib.train import Trainer

MATMUL_SIZE = 4096


def matmul_gflops(repeats: int = 3) -> float:
    """Return the best fp32 GFLOP/s of a 4096 x 4096 matmul over `repeats` runs on the CPU."""
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
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

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, model.channels, IMAGE_SIZE, IMAGE_SIZE))
    for handle in handles:
        handle.remove()
    return 3 * 2 * multiply_adds / 1e9


def run_benchmark(steps: int = 300, device: str | None = None) -> dict[str, float]:
    """Train the seed's model for `steps` steps on MNIST, print the figures and return them."""
    config = TrainConfig()
    train_data, test_data = load_dataset("mnist", train=True), load_dataset("mnist", train=False)
    full_epoch_steps = len(train_data) // config.batch_size
    trainer = Trainer(
        TrainConfig(train_subset=steps * config.batch_size), train_data, test_data, device=device, progress=False
    )
    trainer.fit(1)  # one short epoch: training steps, step records and a full test pass
    fit_seconds = trainer.train_seconds
    started = time.perf_counter()
    evaluate(trainer.model, test_data.images)
    test_seconds = time.perf_counter() - started
    step_seconds = (fit_seconds - test_seconds) / steps
    samples_per_second = config.batch_size / step_seconds
    gflop_per_image = training_gflop_per_image(config.build_model())
    model_gflops = samples_per_second * gflop_per_image
    matmul = matmul_gflops()
    figures = {
        "seconds_per_epoch": full_epoch_steps * step_seconds + test_seconds,
        "train_seconds_per_epoch": full_epoch_steps * step_seconds,
        "test_seconds": test_seconds,
        "samples_per_second": samples_per_second,
        "gflop_per_image": gflop_per_image,
        "model_gflops": model_gflops,
        "matmul_gflops": matmul,
        "fraction_of_matmul": model_gflops / matmul,
    }
    print(f"device {trainer.device}, {torch.get_num_threads()} threads, batch {config.batch_size}, {steps} timed steps")
    print(f"seconds per epoch (60k train + 10k test): {figures['seconds_per_epoch']:.1f} "
          f"(train {figures['train_seconds_per_epoch']:.1f}, test {test_seconds:.1f})")
    print(f"training samples per second: {samples_per_second:.0f}")
    print(f"model: {gflop_per_image:.4f} GFLOP per image (forward + backward) -> {model_gflops:.0f} GFLOP/s")
    print(f"fp32 {MATMUL_SIZE}x{MATMUL_SIZE} matmul: {matmul:.0f} GFLOP/s; training runs at "
          f"{100 * figures['fraction_of_matmul']:.0f}% of it")
    return figures
