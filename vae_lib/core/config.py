"""TrainConfig: every setting that defines a run, stored in each checkpoint as a plain dict.

A checkpoint alone can therefore rebuild its model and continue its training. Each field's default
and help text are written here once; the command line's options are generated from them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import torch

from vae_lib.core.datasets import DATASETS, DEFAULT_DATASET, dataset_entry
from vae_lib.core.device import PRECISIONS
from vae_lib.core.model import DEFAULT_WIDTHS, VAE, ConditionalVAE
from vae_lib.core.objective import DEFAULT_ALPHA, LIKELIHOODS

LR_SCHEDULES = ("constant", "cosine")
MAX_SEED = 2**64 - 1  # the largest seed torch.manual_seed takes
MAX_FPS = 60  # a training video's frames a second: a screen shows no more, and a faster video's frames are never seen
# Settings that change what the model is; a checkpoint can only continue a run that agrees on them.
MODEL_FIELDS = ("latent_dim", "channels", "widths", "likelihood", "conditional", "dataset")
# Settings a run may change when it is resumed (a longer run, other records); any other change is refused.
RESUMABLE_FIELDS = ("epochs", "log_every", "step_test_images", "epoch_test_images", "keep_epochs", "precision")
# Settings stored by checkpoints of earlier versions, and the field each became.
RENAMED_FIELDS = {"schedule_epochs": "epochs"}
# Settings that checkpoints of earlier versions lack, and the value those runs used.
ADDED_FIELDS = {
    "precision": "fp32",
    "ema_decay": 0.0,
    "likelihood": "gaussian",
    "conditional": False,
    "binarise": False,
    "max_grad_norm": 0.0,
    "lamb_rate": 0.0,
}


def is_whole_number(value: object, minimum: int) -> bool:
    """Return True for an int (not a bool) of at least `minimum`: what a count, a size or a seed must be."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def whole_number(value: object) -> int | None:
    """Return a whole number given as a Python, NumPy or one-element torch integer as an int, else None (a bool, a
    float, text): what figure and hook settings take, so that a count read off an array is taken as it comes."""
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 and not value.is_floating_point() else None
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def real_number(value: object) -> float | None:
    """Return a real number given as a Python, NumPy or one-element torch number as a float, else None (a bool,
    text)."""
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else None
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def setting(
    default: object,
    help: str,
    *,
    flag: str | None = None,
    minimum: int | None = None,
    nargs: int | str | None = None,
    choices: Collection[str] | None = None,
) -> object:
    """Return a dataclass field carrying its command-line help, and its flag when that is not --field-name.

    `minimum` makes an integer setting (or each integer of a tuple) checked; `nargs` and `choices` are argparse's.
    """
    return field(
        default=default, metadata={"help": help, "flag": flag, "minimum": minimum, "nargs": nargs, "choices": choices}
    )


@dataclass(frozen=True)
class TrainConfig:
    """A run's settings. Defaults are the reference implementation's recipe (Adam 1e-3, batch 64, alpha 0.001, constant
    rate)."""

    latent_dim: int = setting(2, "size of the latent space", minimum=1)
    channels: int = setting(1, "image channels (1 for the grey images of every registered dataset)", minimum=1)
    widths: tuple[int, ...] = setting(
        DEFAULT_WIDTHS, "the encoder's four channel counts, mirrored by the decoder", minimum=1, nargs=4
    )
    likelihood: str = setting(
        "gaussian",
        "the decoder's likelihood, an entry of objective.LIKELIHOODS: gaussian (the reference's 0.5 MSE, tanh output), "
        "bernoulli (BCE with logits, nats), or one added there",
        choices=LIKELIHOODS,  # the registry itself, so that an entry added at run time is taken
    )
    binarise: bool = setting(
        False,
        "binarise the images, as a Bernoulli likelihood expects: each training batch afresh (dynamic binarisation), "
        "the test images once with a fixed seed",
    )
    conditional: bool = setting(
        False, "a conditional VAE: encoder and decoder are given each image's one-hot class label (Sohn et al. 2015)"
    )
    dataset: str = setting(DEFAULT_DATASET, f"a dataset of the registry: {', '.join(DATASETS)}")
    alpha: float = setting(DEFAULT_ALPHA, "weight of the KL term")
    epochs: int = setting(32, "epochs the run trains in all (a cosine schedule decays over them)", minimum=1)
    learning_rate: float = setting(1e-3, "Adam's (initial) learning rate", flag="--lr")
    lr_schedule: str = setting(
        "constant", "constant, or cosine: decays to final_lr_fraction of the rate over the run", choices=LR_SCHEDULES
    )
    final_lr_fraction: float = setting(0.02, "a cosine schedule's last learning rate, as a fraction of the first")
    batch_size: int = setting(64, "images per optimisation step", minimum=1)
    seed: int = setting(0, "seed of the initial weights, the shuffling and the sampled z", minimum=0)
    train_subset: int = setting(0, "use only the first N training images (0: all)", minimum=0)
    test_subset: int = setting(0, "use only the first N test images (0: all)", minimum=0)
    log_every: int = setting(200, "steps between two records of the step history", minimum=1)
    step_test_images: int = setting(500, "test images evaluated at each step record", minimum=1)
    epoch_test_images: int = setting(
        0, "test images evaluated after each epoch but the run's last, which evaluates all (0: all)", minimum=0
    )
    keep_epochs: tuple[int, ...] = setting(
        (), "epochs whose checkpoint is also kept as epoch_NNN.pt", minimum=1, nargs="*"
    )
    max_grad_norm: float = setting(
        0.0,
        "scale each step's gradient down to this norm when it is larger (0: never); the sweep's collapsed points "
        "need it (vae_lib.course.sweep)",
    )
    lamb_rate: float = setting(
        0.0,
        "train the weight matrices and kernels with LAMB (optimizer.Lamb) instead of Adam: each moves by this "
        "fraction of its own norm at a step, scaled by the schedule and raised from 0 over the first epoch; Adam "
        "keeps the learning rate for the biases and batch norm (0: Adam for every weight)",
    )
    ema_decay: float = setting(
        0.0,
        "keep an exponential moving average of the weights, with this decay per step, and evaluate and save it as "
        "the model (0: off; 0.998 averages over about the last 500 steps)",
    )
    precision: str = setting(
        "auto",
        "auto: bf16 autocast where the device computes bf16 natively (a CUDA GPU, a CPU with AVX512-BF16 or AMX), "
        "else fp32; bf16; fp32 (turns autocast off)",
        choices=PRECISIONS,
    )

    def __post_init__(self) -> None:
        for name in ("widths", "keep_epochs"):  # a single number where a list belongs: keep_epochs=3
            value = getattr(self, name)
            if isinstance(value, int | float | str):
                raise ValueError(f"{name} is a list of numbers, got {value!r}: write {name}=({value!r},) for one")
            object.__setattr__(self, name, tuple(value))
        alpha_is_number = isinstance(self.alpha, int | float) and not isinstance(self.alpha, bool)  # as vae_loss's
        if not (alpha_is_number and math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(
                f"alpha weights the KL term and must be > 0 (and finite), got {self.alpha!r}. Without the KL term "
                "nothing bounds the variance of latent dimensions the decoder ignores: it overflows within a few "
                "dozen steps and the loss becomes NaN. For a nearly plain autoencoder use a small alpha such as 1e-5."
            )
        if (
            not (isinstance(self.learning_rate, int | float) and math.isfinite(self.learning_rate))
            or self.learning_rate <= 0
        ):
            raise ValueError(f"learning_rate must be a finite number > 0, got {self.learning_rate}")
        if not (isinstance(self.final_lr_fraction, int | float) and 0 <= self.final_lr_fraction <= 1):
            raise ValueError(
                f"final_lr_fraction must lie in [0, 1] (a fraction of the learning rate), got {self.final_lr_fraction}"
            )
        if not (isinstance(self.max_grad_norm, int | float) and 0 <= self.max_grad_norm < math.inf):
            raise ValueError(
                f"max_grad_norm must be a finite number >= 0 (0 never clips the gradient), got {self.max_grad_norm}"
            )
        lamb_rate_is_number = isinstance(self.lamb_rate, int | float) and not isinstance(self.lamb_rate, bool)
        if not (lamb_rate_is_number and 0 <= self.lamb_rate < math.inf):
            raise ValueError(
                f"lamb_rate must be a finite number >= 0 (0 trains every weight with Adam; 0.007 is 2d-lab's), got "
                f"{self.lamb_rate}"
            )
        if not (isinstance(self.ema_decay, int | float) and 0 <= self.ema_decay < 1):
            raise ValueError(
                "ema_decay must lie in [0, 1) (0 turns the weight average off; 0.998 is a typical decay), "
                f"got {self.ema_decay}"
            )
        for item in fields(self):
            minimum, choices = item.metadata["minimum"], item.metadata["choices"]
            value = getattr(self, item.name)
            if choices is not None and value not in choices:
                raise ValueError(f"{item.name} must be one of {tuple(choices)}, got {value!r}")
            for number in value if isinstance(value, tuple) else (value,):
                if minimum is not None and not is_whole_number(number, minimum):
                    raise ValueError(f"{item.name} must be an integer >= {minimum}, got {number!r}")
        if self.seed > MAX_SEED:
            raise ValueError(
                f"seed must be an integer from 0 to 2**64 - 1 (what torch's generators take), got {self.seed}"
            )
        for name in ("conditional", "binarise"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if len(self.widths) != len(DEFAULT_WIDTHS):
            raise ValueError(f"widths must be {len(DEFAULT_WIDTHS)} channel counts, got {self.widths}")

    def build_model(self) -> VAE:
        """Return a freshly initialised VAE of this configuration's shape (a ConditionalVAE with `conditional`, with
        one class per class of the dataset)."""
        if self.conditional:
            classes = len(dataset_entry(self.dataset).class_names)
            return ConditionalVAE(self.latent_dim, self.channels, self.widths, self.likelihood, classes=classes)
        return VAE(self.latent_dim, self.channels, self.widths, self.likelihood)

    def learning_rate_at(self, step: int, steps_per_epoch: int) -> float:
        """Return the learning rate of optimisation step `step` (0-based) under this schedule."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        progress = min(1.0, step / (self.epochs * steps_per_epoch))
        floor = self.final_lr_fraction
        return self.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))

    def to_dict(self) -> dict:
        """Return the settings as a plain dict (what checkpoints store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Return the config a checkpoint stored; unknown keys mean a newer vae_lib wrote it."""
        values = dict(values)
        for old, new in RENAMED_FIELDS.items():
            if old in values:
                stored = values.pop(old)
                if stored:  # earlier versions stored 0 for a constant schedule, which had no length
                    values[new] = stored
        for name, earlier in ADDED_FIELDS.items():
            values.setdefault(name, earlier)
        known = {item.name for item in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"unknown config settings {sorted(unknown)}: the checkpoint was written by another vae_lib version"
            )
        return cls(**values)

    def continued_as(self, requested: TrainConfig) -> TrainConfig:
        """Return this saved run's config with the requested RESUMABLE_FIELDS applied; ValueError names others."""
        refused = self.differences(requested, tuple(f.name for f in fields(self) if f.name not in RESUMABLE_FIELDS))
        if refused:
            raise ValueError("; ".join(refused))
        return replace(self, **{name: getattr(requested, name) for name in RESUMABLE_FIELDS})

    def differences(self, other: TrainConfig, names: tuple[str, ...] = MODEL_FIELDS) -> list[str]:
        """Return 'name: mine vs other' for each of the named settings on which the two disagree."""
        return [
            f"{name}: {getattr(self, name)!r} vs {getattr(other, name)!r}"
            for name in names
            if getattr(self, name) != getattr(other, name)
        ]


# The recorded settings of the shipped models (outputs/checkpoints/), used by `--recipe` and `make reproduce`;
# they were trained in fp32. The -fast recipes are the same runs in bf16 autocast where the CPU computes it
# natively (fp32 elsewhere), evaluating 2,000 test images after each epoch but the last, with the model an
# exponential moving average of the weights: the README's Speed section gives their time to the same quality
# (`benchmark --time-to-quality`).
RECIPES = {
    "2d": TrainConfig(
        latent_dim=2, learning_rate=2e-3, lr_schedule="cosine", epochs=40, keep_epochs=(1, 20, 40), precision="fp32"
    ),
    "8d": TrainConfig(
        latent_dim=8, learning_rate=2e-3, lr_schedule="cosine", epochs=32, keep_epochs=(1, 16, 32), precision="fp32"
    ),
}
SHIPPED_RECIPES = tuple(RECIPES)
FAST_SETTINGS = {"precision": "auto", "epoch_test_images": 2000, "ema_decay": 0.998}
RECIPES |= {f"{name}-fast": replace(recipe, **FAST_SETTINGS) for name, recipe in list(RECIPES.items())}
# Five minutes of training for a lab: the -fast recipe with its cosine schedule decaying over 13 epochs (213-335 s on
# 2-core Intel Xeons, 300-419 s on AMD EPYCs), each step's gradient clipped to norm 1, and LAMB for the weight
# matrices and kernels (optimizer.Lamb: each moves by 0.007 of its norm at a step, on the schedule, raised from 0 over
# the first epoch). The clip narrows the seeds' spread: the norm is 0.3-0.4 in most steps, but a few of the first 150
# are far larger (up to 43.8), and one such step can leave a 13-epoch run behind for good (with Adam at one thread,
# 0.07382-0.07409 over five seeds clipped, 0.07422-0.07978 unclipped). LAMB ended ahead of Adam in most runs of the
# same seed and CPU (README, Speed, "LAMB for the matrices and kernels"); both end short of the reference's best
# (0.0732) in most runs. The README's Speed section ("Five minutes: --recipe 2d-lab") has the races, the ideas tried
# for that budget and what the target takes.
RECIPES["2d-lab"] = replace(RECIPES["2d-fast"], epochs=13, keep_epochs=(), max_grad_norm=1.0, lamb_rate=0.007)
# The conditional 2-D model of notebook 08 (outputs/checkpoints/cvae_2d.pt): the -fast recipe, given the labels,
# over 20 epochs (the class no longer has to be stored in z, so it needs fewer).
RECIPES["cvae-2d"] = replace(RECIPES["2d-fast"], conditional=True, epochs=20, keep_epochs=(1, 20))
# The Bernoulli VAE of notebook 07 (outputs/checkpoints/vae_bernoulli.pt): dynamically binarised MNIST, the plain
# ELBO in nats (alpha = 1), 32 latent dimensions (fewer than the 50 of Burda et al.'s model, where 15-25 stay active;
# all 32 of this one do, the README's Bernoulli section), the -fast recipe's numerics and weight average.
RECIPES["bernoulli"] = TrainConfig(
    latent_dim=32,
    likelihood="bernoulli",
    binarise=True,
    alpha=1.0,
    learning_rate=1e-3,
    lr_schedule="cosine",
    epochs=30,
    keep_epochs=(1, 10, 30),
    **FAST_SETTINGS,
)
