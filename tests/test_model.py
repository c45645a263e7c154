import pytest
import torch

from vae_lib import VAE
from vae_lib.core.device import place_model
from vae_lib.core.model import ConditionalVAE, ModelInputError


@pytest.mark.parametrize("latent_dim", [2, 8])
def test_forward_shapes_and_output_range(latent_dim: int) -> None:
    torch.manual_seed(0)
    model = VAE(latent_dim=latent_dim)
    images = torch.rand(5, 1, 28, 28) * 2 - 1
    reconstruction, mean, log_var = model(images)
    assert reconstruction.shape == (5, 1, 28, 28)
    assert mean.shape == log_var.shape == (5, latent_dim)
    assert reconstruction.min() >= -1 and reconstruction.max() <= 1


def test_encoder_and_decoder_follow_the_seed_shape() -> None:
    model = VAE(latent_dim=2)
    images = torch.zeros(3, 1, 28, 28)
    sizes = []
    features = images
    for block in model.encoder:
        features = block(features)
        sizes.append(tuple(features.shape[1:]))
    assert sizes == [(16, 28, 28), (32, 14, 14), (64, 7, 7), (128, 7, 7)]
    latents = torch.zeros(3, 2)
    features = model.from_latent(latents).view(-1, *model.feature_shape)
    sizes = []
    for layer in model.decoder:
        features = layer(features)
        sizes.append(tuple(features.shape[1:]))
    assert sizes == [(64, 7, 7), (32, 14, 14), (16, 28, 28), (1, 28, 28), (1, 28, 28)]
    # conv -> ReLU -> BatchNorm in every block, as in the seed
    assert [type(layer).__name__ for layer in model.encoder[0]] == ["Conv2d", "ReLU", "BatchNorm2d"]
    # encoder 97,632 + linear layers 25,092 + 18,816 + decoder 115,169, counted by hand
    assert sum(p.numel() for p in model.parameters()) == 256_709


def test_encode_decode_and_forward_agree() -> None:
    torch.manual_seed(1)
    model = VAE(latent_dim=8).eval()
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    mean, log_var = model.encode(images)
    torch.manual_seed(7)
    reconstruction, forward_mean, _ = model(images)
    torch.manual_seed(7)
    expected = model.decode(mean + torch.randn_like(mean) * torch.exp(0.5 * log_var))
    assert torch.equal(forward_mean, mean)
    assert torch.allclose(reconstruction, expected)


def test_sample_draws_from_the_prior_with_a_generator() -> None:
    model = VAE(latent_dim=2).eval()
    first = model.sample(6, generator=torch.Generator().manual_seed(3))
    second = model.sample(6, generator=torch.Generator().manual_seed(3))
    assert first.shape == (6, 1, 28, 28)
    assert torch.equal(first, second)
    with torch.no_grad():  # the same images decoded by hand from N(0, I) draws of that generator
        expected = model.decode(torch.randn(6, 2, generator=torch.Generator().manual_seed(3)))
    assert torch.allclose(first, expected, atol=1e-6)
    assert not torch.allclose(first[0], first[1], atol=1e-3)  # six different latents, not one


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_bad_latent_dim_is_rejected(bad) -> None:
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(latent_dim=bad)


# What a learner calling the model by hand gives it, and what the refusal must say (torch's own errors named a layer's
# weights: "mat1 and mat2 shapes cannot be multiplied (6x2 and 6272x4)", "Input type (unsigned char) and bias type").
WRONG_IMAGES = [
    (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), "to_model_input(images) first"),
    (torch.zeros(4, 28, 28, dtype=torch.uint8), "to_model_input(images) first"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.int64), "to_model_input(images.byte())"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.bool), "images.float() * 2 - 1"),
    (torch.zeros(1, 28, 28), "that is one image: give a batch of one, image.unsqueeze(0)"),
    (torch.zeros(28, 28), "that is one image: give a batch of one, image.view(1, 1, 28, 28)"),
    (torch.zeros(4, 28, 28), "lacks the channel dimension: images.unsqueeze(1)"),
    (torch.zeros(4, 784), "flattened images: images.view(-1, 1, 28, 28)"),
    (torch.zeros(4, 28, 28, 1), "images.permute(0, 3, 1, 2)"),
    (torch.zeros(4, 3, 28, 28), "this model takes 1-channel images, these have 3"),
    (torch.zeros(4, 1, 32, 32), "got float32 of shape (4, 1, 32, 32)"),
    (torch.zeros(6, 2), "these look like 6 latents of 2 numbers: decode latents with model.decode(z"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.float64), "weights are float32 and these images float64"),
    ([[0.0] * 28] * 28, "got a list: torch.as_tensor(images, dtype=torch.float32)"),
    ([torch.zeros(1, 28, 28)] * 2, "got a list: torch.stack(images)"),
    (
        (torch.zeros(2, 1, 28, 28), torch.zeros(2)),
        "an (images, labels) pair, a Batch? Give the model both, model(*batch)",
    ),
]
WRONG_LATENTS = [
    (torch.zeros(4, 8), "this model's latent space has 2 dimensions, these latents 8"),
    (
        torch.zeros(2, 6),
        "these are 2 latents of 6 numbers: another model's (take the size from model.latent_dim), or 6",
    ),
    ((torch.zeros(3, 2), torch.zeros(3, 2)), "encode's (mean, log_var)? Decode the means"),
    (torch.zeros(3, 1, 28, 28), "these look like images: model.decode takes latents"),
    (torch.zeros(4, 2, dtype=torch.long), "latents are real numbers: latents.float()"),
    (torch.zeros(4, 2, dtype=torch.float64), "weights are float32 and these latents float64"),
]


@pytest.mark.parametrize("make", [VAE, ConditionalVAE])
@pytest.mark.parametrize(("images", "advice"), WRONG_IMAGES)
def test_what_the_encoder_does_not_take_is_refused_saying_what_to_do(make, images, advice) -> None:
    model, labels = make(latent_dim=2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ModelInputError) as refusal:
        model(images, labels)
    assert advice in str(refusal.value)
    if isinstance(images, torch.Tensor):
        assert refusal.value.given == tuple(images.shape) and refusal.value.expected == ("N", 1, 28, 28)


@pytest.mark.parametrize("make", [VAE, ConditionalVAE])
@pytest.mark.parametrize(("latents", "advice"), WRONG_LATENTS)
def test_what_the_decoder_does_not_take_is_refused_saying_what_to_do(make, latents, advice) -> None:
    model = make(latent_dim=2)
    with pytest.raises(ModelInputError) as refusal:
        model.decode(latents, torch.zeros(3, dtype=torch.long))
    assert advice in str(refusal.value)
    given = tuple(latents.shape) if isinstance(latents, torch.Tensor) else None
    assert refusal.value.given == given and refusal.value.expected == ("N", 2)


def test_a_plain_vae_decodes_latents_of_any_leading_shape_and_a_conditional_one_asks_for_rows() -> None:
    model = VAE(latent_dim=2).eval()  # as its layers always did: a learner's right answers decode one latent at a time
    assert model.decode(torch.zeros(2)).shape == (1, 1, 28, 28)
    assert model.decode(torch.zeros(5, 1, 2)).shape == (5, 1, 28, 28)
    with pytest.raises(ModelInputError, match=r"give it a batch, z.view\(-1, 2\), and one label per row"):
        ConditionalVAE(latent_dim=2).decode(torch.zeros(2), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ModelInputError, match="these look like images"):  # whatever the latent size
        VAE(latent_dim=28).decode(torch.zeros(4, 1, 28, 28))
    with pytest.raises(ModelInputError, match=r"give the model a batch of images, N x 1 x 28 x 28"):
        model(torch.zeros(4, 1, 28, 28, dtype=torch.complex64))
    meta = VAE(latent_dim=2).to("meta")  # a device autocast does not know
    assert meta(torch.empty(4, 1, 28, 28, device="meta"))[0].shape == (4, 1, 28, 28)
    model.from_latent = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 128 * 49))
    assert model.decode(torch.zeros(3, 2)).shape == (3, 1, 28, 28)  # a subclass's own layer: no .weight to read


def test_a_half_model_is_told_how_to_go_back_and_autocast_inputs_pass() -> None:
    model = VAE(latent_dim=2).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # float32 images and bf16 latents meet cast weights
        assert model(torch.zeros(3, 1, 28, 28))[0].shape == (3, 1, 28, 28)
        assert model.decode(torch.zeros(3, 2, dtype=torch.bfloat16)).shape == (3, 1, 28, 28)
        with pytest.raises(ModelInputError, match="weights are float32 and these images float64"):  # not cast
            model(torch.zeros(3, 1, 28, 28, dtype=torch.float64))
    with pytest.raises(ModelInputError, match=r"weights are float16 and these images float32: .*model\.float\(\)"):
        model.half()(torch.zeros(3, 1, 28, 28))


def _layouts_reaching_the_encoder_output_and_decoder(model: VAE, images: torch.Tensor) -> tuple[bool, bool]:
    """Run a forward and backward pass; return whether the encoder's features got their gradient, and the
    decoder its input, in channels-last layout."""
    seen = {}

    def watch_gradient(module: torch.nn.Module, inputs: tuple, features: torch.Tensor) -> None:
        features.register_hook(lambda gradient: seen.update(gradient=gradient))

    model.encoder.register_forward_hook(watch_gradient)
    model.decoder.register_forward_pre_hook(lambda module, inputs: seen.update(decoder_input=inputs[0]))
    torch.manual_seed(1)  # the same noise in z for every model
    reconstruction, mean, log_var = model(images)
    (reconstruction.square().mean() + log_var.exp().mean()).backward()
    return tuple(seen[name].is_contiguous(memory_format=torch.channels_last) for name in ("gradient", "decoder_input"))


def test_a_placed_vae_keeps_channels_last_across_the_flatten_and_computes_the_same_gradients() -> None:
    torch.manual_seed(0)
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    moved, placed = VAE(latent_dim=2), VAE(latent_dim=2)
    placed.load_state_dict(moved.state_dict())
    moved = moved.to(memory_format=torch.channels_last)
    placed = place_model(place_model(placed, "cpu"), "cpu")  # placing twice adds nothing twice
    assert len(placed.encoder._forward_hooks) == len(placed.decoder._forward_pre_hooks) == 1

    # Moved alone, the flatten between convolutions and linear layers hands both sides NCHW tensors.
    assert _layouts_reaching_the_encoder_output_and_decoder(moved, images) == (False, False)
    assert _layouts_reaching_the_encoder_output_and_decoder(placed, images) == (True, True)
    for (name, moved_parameter), placed_parameter in zip(moved.named_parameters(), placed.parameters(), strict=True):
        scale = moved_parameter.grad.abs().max()
        assert torch.allclose(moved_parameter.grad, placed_parameter.grad, rtol=0, atol=1e-5 * scale), name
