"""The convolutional VAE: encoder to (mean, log-variance), reparameterisation, decoder; and LatentModel, what
training, evaluation and the figures need of any model (a conditional one included).

The shape follows the reference implementation: conv -> ReLU -> BatchNorm blocks, 28 -> 28 -> 14 -> 7 -> 7. The
decoder's last layer follows its likelihood (vae_lib.core.objective): tanh for gaussian, logits for bernoulli.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from vae_lib.core.objective import likelihood_named

IMAGE_SIZE = 28
DEFAULT_WIDTHS = (16, 32, 64, 128)
# The encoder halves the image twice (strides 1, 2, 2, 1), so features are 7 x 7.
FEATURE_SIZE = IMAGE_SIZE // 4


def reparameterise(mean: torch.Tensor, log_var: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Return z = mean + sigma * eps, differentiable in mean and log_var; eps ~ N(0, I) unless `noise` gives it."""
    noise = torch.randn_like(mean) if noise is None else noise
    return mean + noise * torch.exp(0.5 * log_var)


class ModelInputError(ValueError):
    """A VAE was given something other than what it takes: images where it takes latents, one image where it takes
    a batch, pixels 0-255 where it takes [-1, 1], latents of another size. `given` is the shape it was given
    (None for what is not a tensor) and `expected` the shape it takes, N standing for any batch size."""

    def __init__(self, message: str, given: tuple[int, ...] | None, expected: tuple[int | str, ...]) -> None:
        super().__init__(message)
        self.given, self.expected = given, expected


class LatentModel(Protocol):
    """What training, evaluation and the figures need of a model; VAE is one.

    A model that needs the labels of its images (a conditional VAE) says so with `needs_labels`, and is then
    always given them; other models are given them too, and may ignore them.
    """

    latent_dim: int
    channels: int
    likelihood: str  # the name of the decoder's likelihood (vae_lib.core.objective.LIKELIHOODS)
    needs_labels: bool

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior's (mean, log_var), each N x latent_dim."""

    def decoder_output(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return the likelihood's parameters for each latent (images for gaussian, logits for bernoulli)."""

    def decode(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return the decoded images in [-1, 1]."""

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (decoder output, mean, log_var) for a batch, z sampled from q(z|x)."""


def _shape_text(shape: tuple[int | str, ...]) -> str:
    """Return a shape as the messages write what a model takes: N x 1 x 28 x 28."""
    return " x ".join(str(size) for size in shape)


def autocast_on(device_type: str) -> bool:
    """Return whether autocast is on for this device type (False for one autocast does not know, such as meta)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return False


def dtype_name(dtype: torch.dtype) -> str:
    """Return a dtype's name without torch's prefix: float64, uint8."""
    return str(dtype).removeprefix("torch.")


def _conv_block(in_channels: int, out_channels: int, kernel_size: int, stride: int, transposed: bool) -> nn.Sequential:
    """Return conv (or transposed conv) -> ReLU -> BatchNorm, the reference implementation's block."""
    conv_type = nn.ConvTranspose2d if transposed else nn.Conv2d
    return nn.Sequential(
        conv_type(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(out_channels),
    )


class VAE(nn.Module):
    """Convolutional variational autoencoder for 28 x 28 images in [-1, 1].

    `widths` are the encoder's four channel counts; the decoder mirrors them. `likelihood` names the decoder's
    likelihood, which sets its last layer. It uses no labels (needs_labels is False) and ignores any it is given.
    """

    needs_labels = False

    def __init__(
        self,
        latent_dim: int = 2,
        channels: int = 1,
        widths: tuple[int, ...] = DEFAULT_WIDTHS,
        likelihood: str = "gaussian",
    ) -> None:
        super().__init__()
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        widths = tuple(widths)
        if len(widths) != 4 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths must be four positive integers, got {widths!r}")
        self.latent_dim = latent_dim
        self.channels = channels
        self.widths = widths
        self.likelihood = likelihood
        head = likelihood_named(likelihood).head()
        w1, w2, w3, w4 = widths
        self.feature_shape = (w4, FEATURE_SIZE, FEATURE_SIZE)
        feature_count = w4 * FEATURE_SIZE * FEATURE_SIZE

        self.encoder = nn.Sequential(
            _conv_block(channels, w1, 3, 1, transposed=False),  # 28 -> 28
            _conv_block(w1, w2, 3, 2, transposed=False),  # 28 -> 14
            _conv_block(w2, w3, 3, 2, transposed=False),  # 14 -> 7
            _conv_block(w3, w4, 3, 1, transposed=False),  # 7 -> 7
        )
        self.to_latent = nn.Linear(feature_count, 2 * latent_dim)
        self.from_latent = nn.Linear(latent_dim, feature_count)
        self.decoder = nn.Sequential(
            _conv_block(w4, w3, 3, 1, transposed=True),  # 7 -> 7
            _conv_block(w3, w2, 4, 2, transposed=True),  # 7 -> 14
            _conv_block(w2, w1, 4, 2, transposed=True),  # 14 -> 28
            nn.ConvTranspose2d(w1, channels, kernel_size=3, stride=1, padding=1),
            head,
        )

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior's (mean, log_var), each N x latent_dim."""
        self.check_images(images)
        features = self.encoder(images).flatten(1)
        mean, log_var = self.to_latent(features).chunk(2, dim=1)
        return mean, log_var

    reparameterise = staticmethod(reparameterise)

    def decoder_output(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return the likelihood's parameters, N x channels x 28 x 28: images in [-1, 1] (gaussian) or logits."""
        self.check_latents(latents)
        features = self.from_latent(latents).view(-1, *self.feature_shape)
        return self.decoder(features)

    def decode(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return images in [-1, 1], N x channels x 28 x 28, decoded from N x latent_dim latents."""
        return likelihood_named(self.likelihood).to_images(self.decoder_output(latents, labels))

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (decoder output, mean, log_var) for N x channels x 28 x 28 images in [-1, 1]; the decoder's
        output is the reconstruction for gaussian, its logits for bernoulli."""
        mean, log_var = self.encode(images, labels)
        return self.decoder_output(reparameterise(mean, log_var), labels), mean, log_var

    def check_images(self, images: torch.Tensor) -> None:
        """Raise a ModelInputError saying what to do unless `images` are what the encoder takes, a floating-point
        batch N x channels x 28 x 28 in the weights' precision (torch's own errors name a layer's weights, not the
        mistake). Shapes and types only: the values are checked where data comes in (data.to_model_input)."""
        expected = (self.channels, IMAGE_SIZE, IMAGE_SIZE)
        if not isinstance(images, torch.Tensor):
            raise ModelInputError(
                f"the model takes a tensor of images, N x {_shape_text(expected)}, got a {type(images).__name__}: "
                f"{self._as_tensor_advice(images, 'images')}",
                None,
                ("N", *expected),
            )
        given = tuple(images.shape)
        if images.dim() == 4 and given[1:] == expected and images.is_floating_point():
            self._check_precision(images, "images", ("N", *expected))
            return
        side = (IMAGE_SIZE, IMAGE_SIZE)
        convert = "to_model_input(images)" if self.channels == 1 else f"to_model_input(images, {self.channels})"
        advice = f"give the model a batch of images, N x {_shape_text(expected)}"
        if given == side and self.channels == 1:
            advice = "that is one image: give a batch of one, image.view(1, 1, 28, 28)"
        elif given == expected:
            advice = "that is one image: give a batch of one, image.unsqueeze(0), or torch.stack([...]) of several"
        elif images.dtype == torch.uint8 and (given[1:] == expected or given[1:] == side and self.channels == 1):
            advice = f"pixels 0-255 go through vae_lib.core.data.{convert} first, which makes [-1, 1]"
        elif images.dtype == torch.bool and given[1:] == expected:
            advice = "black and white as False and True: images.float() * 2 - 1 makes them -1 and 1"
        elif not images.is_floating_point() and not images.is_complex() and given[1:] == expected:
            advice = f"pixels 0-255 as integers: vae_lib.core.data.{convert.replace('images', 'images.byte()')}"
        elif images.dim() == 2 and given[1] == self.latent_dim:
            decode = "model.decode(z, labels)" if self.needs_labels else "model.decode(z)"
            advice = f"these look like {given[0]} latents of {self.latent_dim} numbers: decode latents with {decode}"
        elif images.dim() == 3 and given[1:] == side and self.channels == 1:
            advice = "N x 28 x 28 lacks the channel dimension: images.unsqueeze(1)"
        elif images.dim() == 2 and given[1] == self.channels * IMAGE_SIZE * IMAGE_SIZE:
            advice = f"flattened images: images.view(-1, {self.channels}, 28, 28)"
        elif images.dim() == 4 and given[1:3] == side and given[3] == self.channels:
            advice = "channels last (N x 28 x 28 x C, NumPy's order): images.permute(0, 3, 1, 2)"
        elif images.dim() == 4 and given[2:] == side and given[1] != self.channels:
            advice = f"this model takes {self.channels}-channel images, these have {given[1]}: give it its dataset's"
        raise ModelInputError(
            f"the model's encoder takes floating-point images, N x {_shape_text(expected)}, got "
            f"{dtype_name(images.dtype)} of shape {given}: {advice}",
            given,
            ("N", *expected),
        )

    def check_latents(self, latents: torch.Tensor) -> None:
        """Raise a ModelInputError saying what to do unless `latents` are what the decoder takes: floating point,
        in the weights' precision, N x latent_dim (a model without labels also decodes one latent, or any leading
        shape, as N = all of them: ... x latent_dim)."""
        if not isinstance(latents, torch.Tensor):
            raise ModelInputError(
                f"the model's decoder takes a tensor of latents, N x {self.latent_dim}, got a "
                f"{type(latents).__name__}: {self._as_tensor_advice(latents, 'z')}",
                None,
                ("N", self.latent_dim),
            )
        given = tuple(latents.shape)
        rows = latents.dim() == 2 or latents.dim() >= 1 and not self.needs_labels  # cat with the one-hot rows
        images = latents.dim() >= 3 and given[-2:] == (IMAGE_SIZE, IMAGE_SIZE)
        if rows and not images and given[-1] == self.latent_dim and latents.is_floating_point():
            self._check_precision(latents, "latents", ("N", self.latent_dim))
            return
        advice = f"give the decoder N rows of {self.latent_dim} numbers"
        if images:
            advice = "these look like images: model.decode takes latents; encode images with model.encode(images)"
        elif given[-1:] == (self.latent_dim,) and not latents.is_floating_point():
            advice = "latents are real numbers: latents.float()"
        elif given[-1:] == (self.latent_dim,):  # a conditional model given one latent, or several dimensions
            advice = f"give it a batch, z.view(-1, {self.latent_dim}), and one label per row"
        elif latents.dim() == 2 and given[0] == self.latent_dim:  # transposed, or another model's latents
            advice = (
                f"this model's latent space has {self.latent_dim} dimensions, and these are {self.latent_dim} latents "
                f"of {given[1]} numbers: another model's (take the size from model.latent_dim), or {given[1]} latents "
                "transposed (z.T gives one row per latent)?"
            )
        elif latents.dim() >= 1:
            advice = (
                f"this model's latent space has {self.latent_dim} dimensions, these latents {given[-1]}: take the "
                "size from the model, model.latent_dim, or decode with the model they came from"
            )
        raise ModelInputError(
            f"the model's decoder takes floating-point latents, N x {self.latent_dim}, got "
            f"{dtype_name(latents.dtype)} of shape {given}: {advice}",
            given,
            ("N", self.latent_dim),
        )

    def _check_precision(self, given: torch.Tensor, what: str, expected: tuple[int | str, ...]) -> None:
        """Raise a ModelInputError unless `given` is in the weights' precision, or autocast casts it (float64 it
        does not)."""
        weights = next(self.parameters()).dtype
        if given.dtype == weights or given.dtype != torch.float64 and autocast_on(given.device.type):
            return
        name = dtype_name(weights)
        model_back = (
            ""
            if weights == torch.float32
            else ", or make the model float32 again, model.float(): vae_lib gives float32"
        )
        raise ModelInputError(
            f"the model's weights are {name} and these {what} {dtype_name(given.dtype)}: give it "
            f"{what}.to(torch.{name}){model_back}",
            tuple(given.shape),
            expected,
        )

    def _as_tensor_advice(self, given: object, name: str) -> str:
        """Return how to make a tensor of what the model was given instead of one: encode's (mean, log_var), a
        Batch, a list of tensors, numbers or an array."""
        pair = isinstance(given, tuple) and len(given) == 2 and isinstance(given[0], torch.Tensor)
        if pair and given[0].dim() == 2 and given[0].shape[1] == self.latent_dim:
            return "encode's (mean, log_var)? Decode the means, model.decode(model.encode(images)[0])"
        if pair:
            return "an (images, labels) pair, a Batch? Give the model both, model(*batch)"
        if isinstance(given, list | tuple) and given and all(isinstance(item, torch.Tensor) for item in given):
            return f"torch.stack({name}) makes one of tensors of one shape"
        return f"torch.as_tensor({name}, dtype=torch.float32) makes one of numbers or an array"

    @torch.no_grad()
    def sample(
        self, count: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return `count` images decoded from latents drawn from the prior N(0, I) (with `labels`, as those classes)."""
        device = next(self.parameters()).device
        latents = torch.randn(count, self.latent_dim, generator=generator, device=device)
        return self.decode(latents, None if labels is None else labels.to(device))


class ConditionalVAE(VAE):
    """A VAE given each image's class (Sohn, Lee & Yan 2015): the one-hot label is appended to the encoder's
    flattened features and to z. With the class given, the latent space is free to hold what the label does not
    say, the style (slant, thickness): one z decoded with every label writes each class in the same style."""

    needs_labels = True

    def __init__(self, *args: Any, classes: int = 10, **options: Any) -> None:
        """Build the VAE of `args` and `options` (as VAE's), conditioned on `classes` one-hot labels."""
        super().__init__(*args, **options)
        if not isinstance(classes, int) or classes < 2:
            raise ValueError(f"a conditional VAE needs at least two classes, got {classes!r}")
        self.classes = classes
        feature_count = self.to_latent.in_features
        self.to_latent = nn.Linear(feature_count + classes, 2 * self.latent_dim)
        self.from_latent = nn.Linear(self.latent_dim + classes, feature_count)

    def one_hot(self, labels: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """Return the labels as one-hot rows in `like`'s dtype; a ValueError says what to pass when there are none."""
        if labels is None:
            raise ValueError(
                "a conditional VAE needs each image's label: pass labels, a Batch(images, labels) or an ImageDataset"
            )
        whole = not labels.is_floating_point() or bool((labels == labels.round()).all())
        outside = labels.numel() > 0 and bool(labels.min() < 0 or labels.max() >= self.classes)
        if labels.shape != like.shape[:1] or not whole or outside:
            values = f", values {labels.min().item():g} to {labels.max().item():g}" if labels.numel() else ""
            raise ValueError(
                f"labels must be one whole class index in [0, {self.classes}) per row ({like.shape[0]} rows), "
                f"got shape {tuple(labels.shape)}{values}{'' if whole else ', not whole numbers'}"
            )
        return nn.functional.one_hot(labels.long(), self.classes).to(like.dtype)

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior's (mean, log_var) given the images and their labels, each N x latent_dim."""
        self.check_images(images)
        features = self.encoder(images).flatten(1)
        mean, log_var = self.to_latent(torch.cat([features, self.one_hot(labels, features)], dim=1)).chunk(2, dim=1)
        return mean, log_var

    def decoder_output(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return the likelihood's parameters for latents decoded as the given labels' classes."""
        self.check_latents(latents)
        codes = torch.cat([latents, self.one_hot(labels, latents)], dim=1)
        return self.decoder(self.from_latent(codes).view(-1, *self.feature_shape))
