"""The three extensions the layout is built for, each a small local change: a Bernoulli decoder (one likelihood
name), a label-conditioned model (a model that says it needs labels; trainer and evaluation unchanged), and a new
dataset (one registry entry)."""

import hashlib
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vae_lib import DATASETS, VAE, Batch, DatasetEntry, TrainConfig, Trainer, evaluate, load_dataset, load_model
from vae_lib.core.config import ADDED_FIELDS
from vae_lib.core.data import DataError, binarise, binarised, idx_bytes
from vae_lib.core.datasets import legend_title
from vae_lib.core.likelihood import importance_log_weights, log_likelihood_bounds
from vae_lib.core.objective import Likelihood, log_likelihood, vae_loss
from vae_lib.core.train import evaluation_data


def _binary_images(count: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) > 0.7).float() * 2 - 1


def test_the_bernoulli_term_is_bce_with_logits_summed_over_pixels_and_averaged_over_images() -> None:
    generator = torch.Generator().manual_seed(1)
    images, logits = _binary_images(4), torch.randn(4, 1, 28, 28, generator=generator)
    mean, log_var = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    total, recon, kl = vae_loss(images, logits, mean, log_var, 0.5, likelihood="bernoulli")
    pixels = (images + 1) / 2
    by_hand = -(pixels * torch.log(torch.sigmoid(logits)) + (1 - pixels) * torch.log(1 - torch.sigmoid(logits)))
    assert recon.item() == pytest.approx(by_hand.flatten(1).sum(1).mean().item(), rel=1e-5)
    assert recon.item() > 784 * 0.5  # nats per image: hundreds for random logits, not a per-pixel mean
    assert total.item() == pytest.approx(recon.item() + 0.5 * kl.item(), rel=1e-6)
    assert torch.allclose(log_likelihood(images, logits, "bernoulli"), -by_hand.flatten(1).sum(1), rtol=1e-5)


def test_a_bernoulli_model_outputs_logits_and_decodes_images_in_the_unit_range() -> None:
    torch.manual_seed(0)
    model = TrainConfig(latent_dim=3, likelihood="bernoulli").build_model().eval()
    latents = torch.randn(5, 3) * 3
    logits = model.decoder_output(latents)
    assert isinstance(model.decoder[-1], torch.nn.Identity) and isinstance(VAE().decoder[-1], torch.nn.Tanh)
    assert torch.allclose(model.decode(latents), 2 * torch.sigmoid(logits) - 1)
    with torch.no_grad():
        model.decoder[-2].weight.mul_(100)  # logits are unbounded, where a tanh would stop at 1
    assert model.decoder_output(latents).abs().max() > 1


def test_a_bernoulli_run_trains_saves_and_bounds_log_p_x_in_nats(small_train, small_test, tmp_path: Path) -> None:
    config = TrainConfig(latent_dim=4, likelihood="bernoulli", epochs=1, log_every=4, step_test_images=64)
    trainer = Trainer(config, train_data=small_train, test_data=small_test, run_dir=tmp_path, progress=False)
    first = evaluate(trainer.model, small_test)["recon"]
    trainer.fit(1)
    model = load_model(tmp_path / "checkpoint.pt")
    assert model.likelihood == "bernoulli" and trainer.history.epochs[-1].test_recon < first
    log_weights = importance_log_weights(model, binarised(small_test).images[:3], 10)  # a Bernoulli needs no variance
    with pytest.raises(ValueError, match="a probability of black-and-white images, and these have grey pixels"):
        importance_log_weights(model, small_test.images[:3], 10)  # a cross-entropy of grey pixels, as if nats
    bounds = log_likelihood_bounds(log_weights, [1, 10])
    assert -784 * math.log(2) < bounds[1] <= bounds[10] + 1.0 < 0


def test_dynamic_binarisation_draws_new_pixels_each_batch_and_the_test_set_is_binarised_once(small_train) -> None:
    images = small_train.images[:64]
    first, second = binarise(images), binarise(images)
    assert set(first.unique().tolist()) <= {0, 255} and not torch.equal(first, second)
    ink = images.float().div(255).mean().item()
    assert abs(first.float().div(255).mean().item() - ink) < 0.01  # each pixel is 1 with its grey level's probability
    assert torch.equal(binarised(small_train).images, binarised(small_train).images)
    config = TrainConfig(binarise=True, likelihood="bernoulli", alpha=1.0, test_subset=32)
    test = evaluation_data(config, small_train)
    assert len(test) == 32 and torch.equal(test.images, binarised(small_train.subset(32)).images)


def test_evaluate_bounds_a_bernoulli_model_in_nats_on_the_fixed_binarisation(tmp_path: Path, capsys) -> None:
    from vae_lib.tools.cli import main

    config = TrainConfig(
        latent_dim=3, likelihood="bernoulli", binarise=True, alpha=1.0, train_subset=256, test_subset=64
    )
    trainer = Trainer(replace(config, epochs=1, log_every=2, step_test_images=32), run_dir=tmp_path, progress=False)
    trainer.fit(1)
    command = ["evaluate", str(tmp_path / "checkpoint.pt"), "--log-likelihood", "4", "--samples", "100"]
    assert main([*command, "--bounds-file", str(tmp_path / "bounds.pt")]) == 0
    printed = capsys.readouterr().out
    assert "binarised with seed 0" in printed and "Bernoulli decoder, first 4 test images" in printed
    bound_lines = [line for line in printed.splitlines() if line.strip().startswith("k =")]
    bounds = [float(line.split(":")[1].split()[0]) for line in bound_lines]
    # k = 1, 10, 100: negative (probabilities of 0/1 images), rising with k as the bound tightens
    assert len(bounds) == 3 and all(-1000 < bound < 0 for bound in bounds) and bounds[0] < bounds[2]
    assert all(float(line.split("standard error")[1].strip(" )")) > 0 for line in bound_lines)
    assert main([*command, "--bounds-file", str(tmp_path / "bounds.pt")]) == 0  # finds every image done
    again = capsys.readouterr()
    assert "4 of 4 images done" in again.out
    assert [line for line in again.out.splitlines() if line.strip().startswith("k =")] == bound_lines


def test_checkpoints_from_before_the_likelihood_setting_read_as_gaussian() -> None:
    stored = TrainConfig().to_dict()
    del stored["likelihood"]
    assert ADDED_FIELDS["likelihood"] == "gaussian" and TrainConfig.from_dict(stored).likelihood == "gaussian"
    with pytest.raises(ValueError, match="likelihood must be one of"):
        TrainConfig(likelihood="poisson")


class ConditionalVAE(VAE):
    """The VAE with the one-hot label added to the encoder's features and to z (Sohn et al. 2015), in 20 lines."""

    needs_labels = True

    def __init__(self, latent_dim: int = 2, classes: int = 10) -> None:
        super().__init__(latent_dim)
        self.classes, self.labels_seen = classes, 0
        features = self.to_latent.in_features
        self.to_latent = torch.nn.Linear(features + classes, 2 * latent_dim)
        self.from_latent = torch.nn.Linear(latent_dim + classes, features)

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self.labels_seen += len(labels)
        features = torch.cat([self.encoder(images).flatten(1), F.one_hot(labels, self.classes).float()], dim=1)
        return self.to_latent(features).chunk(2, dim=1)

    def decoder_output(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        codes = torch.cat([latents, F.one_hot(labels, self.classes).float()], dim=1)
        return self.decoder(self.from_latent(codes).view(-1, *self.feature_shape))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        mean, log_var = self.encode(images, labels)
        return self.decoder_output(self.reparameterise(mean, log_var), labels), mean, log_var


def test_a_label_conditioned_model_trains_and_evaluates_with_the_unchanged_trainer(small_train, small_test) -> None:
    torch.manual_seed(0)
    model = ConditionalVAE()
    config = TrainConfig(epochs=1, log_every=4, step_test_images=64)
    trainer = Trainer(config, model=model, train_data=small_train, test_data=small_test, progress=False)
    before = evaluate(model, small_test)["recon"]
    trainer.fit(1)
    assert model.labels_seen > len(small_train) and evaluate(model, small_test)["recon"] < before
    batch = Batch(small_test.images[:8], small_test.labels[:8])
    assert evaluate(model, batch)["recon"] > 0
    with pytest.raises(ValueError, match="conditioned on labels: pass an ImageDataset or a Batch"):
        evaluate(model, small_test.images)


FASHION_CLASSES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")


def _fashion_entry(tmp_path: Path) -> DatasetEntry:
    """A Fashion-MNIST-shaped dataset on synthetic IDX files: the one entry a new dataset needs."""
    folder = tmp_path / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    generator = np.random.default_rng(0)
    files = {}
    for split, count in (("train", 256), ("t10k", 64)):
        images = generator.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = generator.integers(0, 10, size=count, dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            (folder / f"{split}-{kind}-ubyte").write_bytes(idx_bytes(array))
        files["train" if split == "train" else "test"] = (f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte")
    md5 = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for pair in files.values() for name in pair}
    return DatasetEntry(
        name="fashion-mnist",
        title="Fashion-MNIST",
        folder="FashionMNIST/raw",
        files=files,
        md5=md5,
        class_names=FASHION_CLASSES,
        legend_title="garment",
        how_to_get="Download the four files of github.com/zalandoresearch/fashion-mnist into {folder}/.",
    )


def test_a_new_dataset_is_one_registry_entry(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(DATASETS, "fashion-mnist", _fashion_entry(tmp_path))
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))
    test = load_dataset("fashion-mnist", train=False)
    assert len(test) == 64 and test.class_names == FASHION_CLASSES and legend_title(test) == "garment"
    config = TrainConfig(dataset="fashion-mnist", epochs=1, log_every=2, step_test_images=32)
    trainer = Trainer(config, progress=False)
    trainer.fit(1)
    assert len(trainer.train_data) == 256 and trainer.history.epochs[-1].test_images == 64
    target = tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:-1] + b"\x03")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte is corrupt(.|\n)*zalandoresearch"):
        load_dataset("fashion-mnist", train=False)


def _laplace(log_prob: bool) -> Likelihood:
    """An L1 reconstruction term (a Laplace decoder of fixed scale, up to a constant and a scale), with or without
    its log-likelihood: log p(x | z) = -sum |x - x'| / b - pixels * log(2b), b read as the variance argument."""

    def laplace_log_prob(images: torch.Tensor, output: torch.Tensor, scale: float | None) -> torch.Tensor:
        return -(images - output).abs().flatten(1).sum(1) / scale - images[0].numel() * math.log(2 * scale)

    return Likelihood(
        "laplace",
        "L1",
        "",
        torch.nn.Tanh,
        lambda output: output,
        lambda images, output: (output - images).abs().flatten(1).mean(1),
        lambda images, output: F.l1_loss(output, images),
        laplace_log_prob if log_prob else None,
        needs_variance=log_prob,
    )


def test_a_likelihood_added_at_run_time_trains_and_log_p_x_needs_its_log_prob(
    small_train, small_test, tmp_path: Path, monkeypatch, capsys
) -> None:
    from vae_lib.core.objective import LIKELIHOODS
    from vae_lib.tools.cli import main

    monkeypatch.setitem(LIKELIHOODS, "laplace", _laplace(log_prob=False))
    config = TrainConfig(likelihood="laplace", epochs=1, log_every=4, step_test_images=64)  # refused before
    trainer = Trainer(config, train_data=small_train, test_data=small_test, run_dir=tmp_path, progress=False)
    first = evaluate(trainer.model, small_test)["recon"]
    trainer.fit(1)
    model = load_model(tmp_path)
    assert model.likelihood == "laplace" and evaluate(model, small_test)["recon"] < first
    refusal = "the laplace likelihood has no log-likelihood in nats .* no log_prob"
    with pytest.raises(ValueError, match=refusal):
        importance_log_weights(model, small_test.images[:2], 10)  # it returned -mean |x - x'| as if in nats
    assert main(["evaluate", str(tmp_path), "--log-likelihood", "2", "--samples", "10"]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and "no log-likelihood in nats" in printed.err  # refused before the test metrics
    monkeypatch.setitem(LIKELIHOODS, "laplace", _laplace(log_prob=True))
    assert main(["evaluate", str(tmp_path), "--log-likelihood", "2", "--samples", "10"]) == 0
    printed = capsys.readouterr().out
    assert "Laplace decoder of variance 0.784, first 2 test images" in printed  # it said "Bernoulli decoder"
    # k = 1 is the ELBO: log p(x | z) + log p(z) - log q(z | x) averaged over the draws, of -1,000 nats or so here
    log_weights = importance_log_weights(model, small_test.images[:2], 10, variance=0.784)
    elbo = float(printed.split("k =    1:")[1].split()[0])
    assert elbo == pytest.approx(log_weights.mean().item(), abs=0.01) and -3000 < elbo < -500


def test_a_dataset_given_to_the_trainer_must_be_the_one_its_config_names(small_train, small_test) -> None:
    letters = replace(small_train, name="emnist-letters")  # registered: the checkpoint would have said mnist
    with pytest.raises(ValueError, match=r"train_data holds emnist-letters images, but the config trains on "):
        Trainer(TrainConfig(epochs=1), train_data=letters, test_data=small_test, progress=False)
    other_test = replace(small_test, name="emnist-digits")  # testing on another dataset's images is the caller's
    assert len(Trainer(TrainConfig(epochs=1), train_data=small_train, test_data=other_test, progress=False).test_data)
    own = replace(small_train, name="my digits")  # images of one's own, not a registered dataset: taken
    assert len(Trainer(TrainConfig(epochs=1), train_data=own, test_data=small_test, progress=False).train_data) > 0


def test_a_checkpoint_of_a_model_of_ones_own_class_says_so_and_resumes_given_one(
    small_train, small_test, tmp_path: Path
) -> None:
    from vae_lib.core.files import CheckpointError

    torch.manual_seed(0)
    config = TrainConfig(epochs=2, log_every=4, step_test_images=64)
    options = {"train_data": small_train, "test_data": small_test, "progress": False}
    Trainer(config, model=ConditionalVAE(), run_dir=tmp_path, **options).fit(1)
    own_class = r"a model of your own class, test_extensions\.ConditionalVAE"
    with pytest.raises(CheckpointError, match=own_class) as refusal:
        load_model(tmp_path)  # it said "the file was changed after vae_lib wrote it"
    assert "model.load_state_dict" in str(refusal.value) and "was changed" not in str(refusal.value)
    with pytest.raises(CheckpointError, match=own_class):
        Trainer.resume(tmp_path, **options)  # it said the optimizer's state was another model's
    trainer = Trainer.resume(tmp_path, model=ConditionalVAE(), **options)
    trainer.fit(1)
    assert trainer.epoch == 2 and trainer.model.labels_seen > len(small_train)
    other = tmp_path / "subclass"  # a class of one's own that keeps the VAE's weights loads as a VAE, as before

    class SameWeights(VAE):
        pass

    Trainer(config, model=SameWeights(), run_dir=other, **options).fit(1)
    assert type(load_model(other)) is VAE and Trainer.resume(other, **options).epoch == 1


def test_the_conditional_helpers_take_any_model_that_needs_labels_and_counts_its_classes(small_test) -> None:
    from vae_lib.core.conditional import decode_as_every_class, likeliest_classes
    from vae_lib.core.train import train_step

    torch.manual_seed(0)
    model = ConditionalVAE(latent_dim=2, classes=4)
    assert decode_as_every_class(model, torch.zeros(3, 2)).shape == (3, 4, 28, 28)  # a TypeError before
    assert likeliest_classes(model, small_test.images[:5]).shape == (5,)
    model.classes = None
    with pytest.raises(TypeError, match="does not say how many there are: give it classes = K"):
        decode_as_every_class(model, torch.zeros(3, 2))
    with pytest.raises(TypeError, match="needs a conditional VAE"):
        decode_as_every_class(VAE(), torch.zeros(3, 2))
    model = ConditionalVAE()
    images = small_test.images[:8].float() / 127.5 - 1
    optimizer = torch.optim.Adam(model.parameters())
    before = [weight.clone() for weight in model.parameters()]
    with pytest.raises(ValueError, match=r"conditioned on labels: pass a Batch\(images, labels\)"):
        train_step(model, optimizer, images.unsqueeze(1), 1e-3)  # one_hot's TypeError on None before
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
