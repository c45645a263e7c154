"""Where the repository keeps its data and outputs, and whether it runs in smoke mode.

Each setting is read here and nowhere else, so a reader finds every switch in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_VARIABLE = "VAE_SMOKE"


def data_dir() -> Path:
    """Return the dataset folder: $VAE_DATA_DIR, else (unset or empty) the repository's data/."""
    return Path(os.environ.get("VAE_DATA_DIR") or REPO_ROOT / "data")


def outputs_dir() -> Path:
    """Return the folder for checkpoints, figures and videos: $VAE_OUTPUTS_DIR, else (unset or empty) outputs/."""
    return Path(os.environ.get("VAE_OUTPUTS_DIR") or REPO_ROOT / "outputs")


def smoke_mode() -> bool:
    """Return True when VAE_SMOKE is set to a true value: notebooks then train for seconds, not minutes. A value
    that is neither on nor off (a typo, `ture`) is refused rather than read as off."""
    raw = os.environ.get(SMOKE_VARIABLE, "")
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"", "0", "false", "no", "off"}:
        return False
    raise ValueError(
        f"{SMOKE_VARIABLE}={raw!r} is neither on (1, true, yes, on) nor off (0, false, no, off, or unset): set it to "
        "one of those"
    )


def runs_dir() -> Path:
    """Return the folder training runs are kept in (outputs/runs/), each in a run folder of its own."""
    return outputs_dir() / "runs"


def shipped_dir() -> Path:
    """Return the folder of the checkpoints shipped with the repository (outputs/checkpoints/)."""
    return outputs_dir() / "checkpoints"
