"""Checks for the course's exercises: each runs a learner's function on a few cases against vae_lib's reference
and returns a CheckResult: a pass, or the case that failed, expected against got, and the mistake it looks like.

A failed check then probes the parts of the formula one at a time (the KL with only μ changing, only σ² changing,
one image against many; the loss with two alphas and a doubled error; the distribution of the noise; the gradients
a training step hands the optimizer), so the hint names the wrong part even for a mistake nobody listed.
The checks never print; a notebook shows the returned result. Their randomness is seeded and leaves the
global random state as it was. An exception raised by the learner's function becomes a failed result that names the
case and the exception, except NotImplementedError, which an exercise not done yet raises to stop its check cell.
"""

from vae_lib.course.exercises.active_units import check_active_units
from vae_lib.course.exercises.bernoulli import check_bernoulli_reconstruction
from vae_lib.course.exercises.checking import CheckResult
from vae_lib.course.exercises.decoder_input import check_decoder_input
from vae_lib.course.exercises.interpolation import check_interpolate
from vae_lib.course.exercises.kl_divergence import check_kl_divergence
from vae_lib.course.exercises.loss import check_loss
from vae_lib.course.exercises.prior_samples import check_sample_prior
from vae_lib.course.exercises.reparameterisation import check_reparameterise
from vae_lib.course.exercises.training_step import check_training_step

__all__ = [
    "CheckResult",
    "check_reparameterise",
    "check_kl_divergence",
    "check_loss",
    "check_training_step",
    "check_sample_prior",
    "check_interpolate",
    "check_active_units",
    "check_bernoulli_reconstruction",
    "check_decoder_input",
]
