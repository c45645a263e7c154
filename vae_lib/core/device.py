"""Choosing the device once (cuda, then mps, then cpu), placing a model on it, the numerics it trains in, and how
the process keeps the memory a CPU step frees."""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from vae_lib.core.model import VAE
from vae_lib.core.words import counted

SUPPORTED_DEVICE_TYPES = ("cuda", "mps", "cpu")
# A run's `precision`: auto (bf16 autocast where the device computes bf16 natively, else fp32), bf16 or fp32.
PRECISIONS = ("auto", "bf16", "fp32")
# CPU flags of native bf16 arithmetic: AVX512-BF16 (Cooper Lake, Sapphire Rapids, AMD Zen 4) and Intel AMX.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# glibc's malloc serves a block above its mmap threshold with fresh pages from the kernel and hands them back when
# it is freed, and returns free memory at the heap's top beyond its trim threshold. With the defaults (128 KiB each,
# raised only as such blocks are freed) the megabytes of activations and gradients a training step frees go back
# to the kernel, and the next step faults each of their pages in again, zeroed: about 4,500 page faults a step of
# batch 64. Kept, a CPU step takes 0.7-0.9 of the time, by CPU and numerics (`make benchmark` prints it). Blocks
# below 64 MiB (a batch's largest activation is 3.2 MB in training, 13 MB in a test pass of 256) come from the heap,
# and it keeps up to 256 MiB of free memory before returning any.
MALLOC_MMAP_THRESHOLD_BYTES = 64 * 2**20
MALLOC_TRIM_THRESHOLD_BYTES = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers, from glibc's malloc.h


def choose_device(preferred: str | torch.device | None = None) -> torch.device:
    """Return `preferred` if given and usable here, else the fastest available device: cuda, then mps, then cpu.

    A device this machine lacks, or one vae_lib cannot train on (tpu, meta, ...), raises a ValueError saying so.
    """
    if isinstance(preferred, str) and not preferred.strip():
        raise ValueError("the device is empty: name one (cpu, cuda, mps) or leave it out for the fastest here")
    if preferred:
        return _checked_device(str(preferred))
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _checked_device(name: str) -> torch.device:
    """Return the device `name` names, after checking that torch can use it on this machine."""
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in SUPPORTED_DEVICE_TYPES:
        raise ValueError(f"unsupported device {name!r}: use one of {', '.join(SUPPORTED_DEVICE_TYPES)}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but torch sees no CUDA GPU here; use cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} was asked for but torch sees only {torch.cuda.device_count()} CUDA GPUs")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} was asked for but this machine has no Apple GPU; use cpu")
    return device


def place_model(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move a model to `device` (checked as choose_device does) in channels-last layout, which runs these small
    convs about 2x faster on CPU.

    A VAE's features also keep that layout across the flatten between the convolutions and the linear layers,
    forward into the decoder and backward into the encoder, where they would fall back to NCHW; mixed layouts
    send BatchNorm's and the convolutions' backward passes down slow paths (about 10 % of a bf16 CPU step).
    The results are the same up to float rounding.
    """
    model = model.to(device=choose_device(device), memory_format=torch.channels_last)
    if isinstance(model, VAE) and not getattr(model, "keeps_channels_last", False):
        model.encoder.register_forward_hook(_gradient_in_channels_last)
        model.decoder.register_forward_pre_hook(_input_in_channels_last)
        model.keeps_channels_last = True
    return model


def _gradient_in_channels_last(module: nn.Module, inputs: tuple, features: torch.Tensor) -> None:
    """Forward hook of the encoder: its features' gradient, built by flatten's backward in NCHW, comes back
    channels-last."""
    if features.requires_grad:
        features.register_hook(lambda gradient: gradient.contiguous(memory_format=torch.channels_last))


def _input_in_channels_last(module: nn.Module, inputs: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    """Forward pre-hook of the decoder: the features unflattened from the latent arrive channels-last."""
    return (inputs[0].contiguous(memory_format=torch.channels_last),)


def malloc_is_glibcs() -> bool:
    """Return whether this process's malloc is glibc's (Linux with glibc), the one keep_freed_memory can set."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep the memory a training step frees for the next step instead of returning it to the
    kernel (see MALLOC_MMAP_THRESHOLD_BYTES); return whether it does. It holds for the whole process, and only
    where the C library is glibc (Linux): elsewhere nothing changes and the answer is False."""
    if not malloc_is_glibcs():
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    return (
        mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES) == 1
        and mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES) == 1
    )


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run a block with torch at `count` CPU threads (None: as it is), then put its thread count back."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def threads_described() -> str:
    """Return torch's CPU thread count as words: '1 thread', '2 threads'."""
    return counted(torch.get_num_threads(), "thread")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """Return the CPU's feature flags from /proc/cpuinfo (empty where there is none, as on macOS and Windows)."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return frozenset()
    return frozenset(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), ()))


def has_native_bf16(device: torch.device | str, flags: frozenset[str] | None = None) -> bool:
    """Return True where bf16 arithmetic is native, so autocast to it pays: a CUDA GPU that supports bf16
    (Ampere or later), or a CPU with AVX512-BF16 or AMX (`flags`: the CPU's, read from /proc/cpuinfo if None)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool((cpu_flags() if flags is None else flags) & NATIVE_BF16_FLAGS)
    return False


def autocast_dtype(
    precision: str, device: torch.device | str, flags: frozenset[str] | None = None
) -> torch.dtype | None:
    """Return the dtype a run's forward pass autocasts to (None: plain fp32) for a `precision` of PRECISIONS.

    auto picks bf16 only where it is native (has_native_bf16): emulated bf16 is slower than fp32. The loss, the
    weights and the optimizer stay in fp32 whatever the choice.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" or (precision == "auto" and has_native_bf16(device, flags)):
        return torch.bfloat16
    return None


def numerics_name(precision: str, device: torch.device | str) -> str:
    """Return, in words, what a run of this precision computes in on `device`: 'bf16 autocast' or 'fp32'."""
    return "fp32" if autocast_dtype(precision, device) is None else "bf16 autocast"
