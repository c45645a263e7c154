"""The training-step check: the reference passes, and each named mistake is recognised by its hint."""

import collections

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vae_lib import train_step, vae_loss
from vae_lib.course.exercises import check_training_step

from .answers import assert_fails_with, kl_of_distributions


def step(model, optimizer, batch, alpha):
    return step_on_outputs(model, optimizer, batch, alpha, model(batch))


def step_on_outputs(model, optimizer, batch, alpha, outputs):
    """The right step, on the (reconstruction, mean, log_var) a forward pass of the caller's own gave."""
    total, recon, kl_term = vae_loss(batch, *outputs, alpha)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def test_a_loop_of_a_few_hundred_learner_steps_matches_train_step(small_train) -> None:
    assert check_training_step(step, small_train.images, steps=200).passed


def test_a_step_check_of_one_step_runs(small_train) -> None:
    assert check_training_step(step, small_train.images, steps=1).passed


def step_by_hand_zeroing_at_the_end(model, optimizer, batch, alpha):
    model.train()
    reconstruction, mean, log_var = model(batch)
    recon = ((reconstruction - batch) ** 2).mean() / 2
    kl_term = 0.5 * (mean.pow(2) + log_var.exp() - log_var - 1).sum(dim=1).mean()
    total = recon + alpha * kl_term
    total.backward()
    optimizer.step()
    model.zero_grad(set_to_none=False)
    return total.detach(), recon.detach(), kl_term.detach()


def test_a_step_written_another_way_with_zero_grad_at_the_end_passes(small_train) -> None:
    assert check_training_step(step_by_hand_zeroing_at_the_end, small_train.images, steps=200).passed


def _closure_step(model, optimizer, batch, alpha):
    losses = []

    def closure():
        optimizer.zero_grad()
        losses[:] = vae_loss(batch, *model(batch), alpha)
        losses[0].backward()
        return losses[0]

    optimizer.step(closure)
    return tuple(value.detach() for value in losses)


def _step_in_float64(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch.double(), reconstruction.double(), mean.double(), log_var.double(), alpha)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _step_with_the_kl_of_distributions(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    recon = 0.5 * F.mse_loss(reconstruction, batch)
    kl_term = kl_of_distributions(mean, log_var)
    total = recon + alpha * kl_term
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _step_returning_numpy(model, optimizer, batch, alpha):
    total, recon, kl_term = vae_loss(batch, *model(batch), alpha)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.detach().numpy(), np.float32(recon.item()), kl_term.detach().numpy()


@pytest.mark.parametrize(
    "right",
    [_closure_step, _step_in_float64, _step_with_the_kl_of_distributions, _step_returning_numpy],
    ids=["closure", "float64", "KL", "numpy"],
)
def test_a_right_step_written_another_way_passes_over_200_steps(right, small_train) -> None:
    # the closure's gradients were read before Adam called it; float rounding that differs grew to a few percent
    # of a single step's KL by step 30-200, which the step-by-step comparison failed; NumPy's 0-d arrays and
    # numbers were "not a tensor" where .item()'s floats passed
    result = check_training_step(right, small_train.images, steps=200)
    assert result.passed, result.details


def _step_with(*, zero_grad=True, optimizer_step=True, loss_of=None, detach=True, alpha_of=None, steps=1):
    def wrong(model, optimizer, batch, alpha):
        reconstruction, mean, log_var = model(batch)
        total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha_of or alpha)
        minimised = loss_of(total, recon, kl_term, alpha) if loss_of else total
        if zero_grad:
            optimizer.zero_grad()
        minimised.backward()
        for _ in range(steps if optimizer_step else 0):
            optimizer.step()
        return (minimised, recon, kl_term) if not detach else (minimised.detach(), recon.detach(), kl_term.detach())

    return wrong


def _step_in_eval_mode(model, optimizer, batch, alpha):
    model.eval()
    return step(model, optimizer, batch, alpha)


def _forward_in_eval_mode(model, optimizer, batch, alpha):
    model.eval()
    reconstruction, mean, log_var = model(batch)
    model.train()
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _zero_grad_between_backward_and_step(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    total.backward()
    optimizer.zero_grad()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _step_before_backward(model, optimizer, batch, alpha):
    total, recon, kl_term = vae_loss(batch, *model(batch), alpha)
    optimizer.zero_grad()
    optimizer.step()
    total.backward()
    return total.item(), recon.item(), kl_term.item()


def _kl_summed_over_the_batch(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    recon = 0.5 * F.mse_loss(reconstruction, batch)
    kl_term = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp())
    total = recon + alpha * kl_term
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _two_forward_passes(model, optimizer, batch, alpha):
    model(batch)
    return train_step(model, optimizer, batch, alpha)


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_step_with(zero_grad=False), "optimizer.zero_grad() is missing"),
        (_step_with(optimizer_step=False), "optimizer.step() is missing"),
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: recon), "the KL term is left out"),
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: recon + kl_term), "alpha is missing"),
        (_step_with(detach=False), "still carry their graph"),
        (_step_in_eval_mode, "model.eval() is called in the training step"),
        (_forward_in_eval_mode, "the forward pass ran in eval mode"),
        (_step_with(steps=2), "optimizer.step() was called 2 times for one batch"),
        (_step_with(alpha_of=0.001), "alpha is ignored: the KL is weighted by 0.001"),
        (_step_with(alpha_of=0.01), "alpha is ignored: the KL is weighted by 0.01"),  # the alpha the long run uses
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: -total), "the wrong sign"),
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: recon - alpha * kl_term), "the KL is subtracted"),
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: alpha * recon + kl_term), "alpha weighs the recon"),
        (_step_with(loss_of=lambda total, recon, kl_term, alpha: 2 * total), "the minimised loss is multiplied by 2"),
        (_zero_grad_between_backward_and_step, "zero_grad() is called between backward() and step()"),
        (_two_forward_passes, "a loss from another forward pass"),
        (_step_before_backward, "backward() runs after optimizer.step()"),  # was told backward() is not called
        (_kl_summed_over_the_batch, "the KL is summed over the batch's 16 images"),  # was "its weight is 0.016, 8"
        (
            lambda model, optimizer, batch, alpha: train_step(model, optimizer, batch, alpha)[::-1],
            "yours returns (kl, reconstruction, total)",
        ),
    ],
)
def test_training_step_mistakes_are_named(wrong, phrase, small_train) -> None:
    assert_fails_with(check_training_step(wrong, small_train.images, steps=5), phrase)


def _step_with_its_own_optimizer(model, optimizer, batch, alpha):
    return step(model, torch.optim.Adam(model.parameters(), lr=1e-3), batch, alpha)


def test_a_step_that_makes_its_own_optimizer_is_told_to_use_the_one_it_is_given(small_train) -> None:
    # its weights change, but the check's probe sees only the optimizer it passes in never step
    result = check_training_step(_step_with_its_own_optimizer, small_train.images, steps=5)
    assert_fails_with(result, "the weights changed", "must use the optimizer it is given, not make its own")
    assert "did not change" not in result.details and "optimizer.step() is missing" not in result.details


def _forward_without_gradients(model, optimizer, batch, alpha):
    with torch.no_grad():
        reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    optimizer.zero_grad()
    total.backward()  # raises: no graph was recorded
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _loss_detached_before_backward(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    optimizer.zero_grad()
    total.detach().backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def test_a_forward_pass_under_no_grad_fails_the_check_and_says_so(small_train) -> None:
    result = check_training_step(_forward_without_gradients, small_train.images, steps=5)
    assert_fails_with(result, "Case *step 1*: your function raised RuntimeError", "must not be under torch.no_grad()")
    assert "cut from the model's graph" not in result.details


def test_a_loss_detached_before_backward_is_not_blamed_on_no_grad(small_train) -> None:
    result = check_training_step(_loss_detached_before_backward, small_train.images, steps=5)
    assert_fails_with(result, "your function raised RuntimeError", "the loss is cut from the model's graph")
    assert "torch.no_grad()" not in result.details


def test_a_step_that_departs_late_is_caught_at_the_step_it_departs(small_train) -> None:
    calls = []

    def drifting(model, optimizer, batch, alpha):
        calls.append(1)
        if len(calls) == 4:
            torch.randn(1)  # consumes noise, so this step and later ones draw other z
        return train_step(model, optimizer, batch, alpha)

    assert_fails_with(check_training_step(drifting, small_train.images, steps=6), "Case *step 4*")


def test_a_step_that_departs_only_at_the_last_step_is_caught_by_the_weights_it_leaves(small_train) -> None:
    calls = []

    def stepping_twice_at_the_end(model, optimizer, batch, alpha):
        calls.append(1)
        losses = train_step(model, optimizer, batch, alpha)
        if len(calls) == 6:  # the losses it returns are right; the weights it leaves are not
            optimizer.step()
        return losses

    result = check_training_step(stepping_twice_at_the_end, small_train.images, steps=6)
    assert_fails_with(
        result, "Step 6: the weights moved differently from train_step's", "optimizer.step() called twice"
    )


def _step_with_the_kl_clamped_at_three(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    kl_term = -0.5 * torch.sum(1 + log_var - mean.clamp(-3, 3).pow(2) - log_var.exp(), dim=1).mean()
    recon = 0.5 * F.mse_loss(reconstruction, batch)
    total = recon + alpha * kl_term
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def _step_decaying_the_learning_rate(model, optimizer, batch, alpha):
    for group in optimizer.param_groups:
        group["lr"] *= 0.999
    return train_step(model, optimizer, batch, alpha)


def _step_decaying_the_learning_rate_after_it(model, optimizer, batch, alpha):
    losses = train_step(model, optimizer, batch, alpha)
    for group in optimizer.param_groups:
        group["lr"] *= 0.999
    return losses


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_step_with_the_kl_clamped_at_three, "the KL loss expected"),
        (_step_decaying_the_learning_rate, "Step 1: the weights moved differently from train_step's"),
        (_step_decaying_the_learning_rate_after_it, "Step 2: the weights moved differently from train_step's"),
    ],
    ids=["KL clamped at |μ| = 3", "learning rate 0.1 % lower each step", "learning rate lowered after each step"],
)
def test_a_step_slightly_off_is_caught_at_the_step_it_departs_however_late(wrong, phrase, small_train) -> None:
    # the first 20 steps were compared exactly and later ones by windowed means within 2-10 %: the clamped KL,
    # right until |μ| passes 3, stayed within 9.9 % and passed; each step is now compared from the learner's weights,
    # with the learning rate the check set
    assert_fails_with(check_training_step(wrong, small_train.images, steps=200), phrase)


def test_a_step_that_stops_training_after_a_while_fails_at_the_step_it_stops(small_train) -> None:
    def stalling(model, optimizer, batch, alpha):
        steps_taken = max((int(state["step"]) for state in optimizer.state.values()), default=0)
        if steps_taken < 20:  # the check's single-call probes start from fresh optimizers
            return train_step(model, optimizer, batch, alpha)
        with torch.no_grad():  # stops training after step 20, returning the losses of a forward pass
            return vae_loss(batch, *model(batch), alpha)

    assert_fails_with(
        check_training_step(stalling, small_train.images, steps=60), "Step 21: the weights did not change"
    )


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (
            lambda model, optimizer, batch, alpha: (lambda t, r, k: (t, t, t))(
                *train_step(model, optimizer, batch, alpha)
            ),
            "the reconstruction loss expected",
        ),
        (
            lambda model, optimizer, batch, alpha: (lambda t, r, k: (t, r, alpha * k))(
                *train_step(model, optimizer, batch, alpha)
            ),
            "Looks like: this is alpha · KL",
        ),
    ],
    ids=["the total three times", "alpha times the KL"],
)
def test_a_step_that_returns_a_wrong_reconstruction_or_kl_fails(wrong, phrase, small_train) -> None:
    # it trains exactly as train_step does; only the losses it reports are wrong (the check compared the total only)
    assert_fails_with(check_training_step(wrong, small_train.images, steps=5), phrase)


def _step_returning_numpy_arrays_of_one_value(model, optimizer, batch, alpha):
    total, recon, kl_term = vae_loss(batch, *model(batch), alpha)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    return tuple(loss.detach().reshape(1).numpy() for loss in (total, recon, kl_term))


def test_a_step_returning_numpy_arrays_of_one_value_is_told_they_are_not_tensors(small_train) -> None:
    assert_fails_with(
        check_training_step(_step_returning_numpy_arrays_of_one_value, small_train.images, steps=1),
        "should be a tensor, got ndarray",
    )


def test_a_step_minimising_a_nan_loss_is_told_its_gradients_are_nan(small_train) -> None:
    def nan_step(model, optimizer, batch, alpha):
        reconstruction, mean, log_var = model(batch)
        total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
        optimizer.zero_grad()
        (recon + alpha * (kl_term - 1e9).sqrt()).backward()
        optimizer.step()
        return total.detach(), recon.detach(), kl_term.detach()

    assert_fails_with(check_training_step(nan_step, small_train.images, steps=5), "used are NaN or infinite")


def _step_clipping_its_gradients(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    optimizer.zero_grad()
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


def test_a_step_that_clips_its_gradients_is_told_they_are_rescaled_not_given_wrong_weights(small_train) -> None:
    result = check_training_step(_step_clipping_its_gradients, small_train.images, steps=5)
    assert_fails_with(result, "Looks like: the gradients point as those of reconstruction + alpha · KL do", "clipped")
    assert "the reconstruction's weight" not in result.details


def test_a_step_with_its_own_wrong_kl_is_pointed_at_the_formula_checks(small_train) -> None:
    def wrong_kl_step(model, optimizer, batch, alpha):
        reconstruction, mean, log_var = model(batch)
        recon = 0.5 * F.mse_loss(reconstruction, batch)
        kl_term = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.mul(0.5).exp(), dim=1).mean()  # σ for σ²
        optimizer.zero_grad()
        (recon + alpha * kl_term).backward()
        optimizer.step()
        return (recon + alpha * kl_term).item(), recon.item(), kl_term.item()

    result = check_training_step(wrong_kl_step, small_train.images, steps=5)
    assert_fails_with(result, "a loss or KL formula of your own that differs (check_loss and check_kl_divergence")


def _step_then(after):
    def answer(model, optimizer, batch, alpha):
        losses = train_step(model, optimizer, batch, alpha)
        after(model, optimizer, losses)
        return losses

    return answer


def _for_each_state(change):
    def after(model, optimizer, losses):
        for state in optimizer.state.values():
            change(state)

    return after


def _reset_batchnorm(model, optimizer, losses):
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d) and module.num_batches_tracked >= 2:
            module.reset_running_stats()


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_step_then(lambda model, optimizer, losses: optimizer.state.clear()), "Step 1: Adam's state after the step"),
        (_step_then(_for_each_state(lambda state: state["exp_avg_sq"].mul_(0.5))), "Step 1: Adam's state after"),
        (_step_then(_for_each_state(lambda state: state["step"].zero_())), "Step 1: Adam's state after the step"),
        (_step_then(_reset_batchnorm), "Step 2: BatchNorm's running statistics after the step differ"),
        (_step_then(lambda model, optimizer, losses: model(torch.zeros(2, 1, 28, 28))), "a second forward pass"),
    ],
    ids=["Adam's state cleared", "Adam's averages halved", "Adam's step count reset", "BatchNorm reset", "logging"],
)
def test_a_step_that_changes_the_optimizer_or_batchnorm_after_stepping_fails(wrong, phrase, small_train) -> None:
    # the check's copy of train_step took the learner's state before each step, so a change after optimizer.step()
    # was inherited and never seen
    assert_fails_with(check_training_step(wrong, small_train.images, steps=5), phrase)


def test_a_step_that_skips_the_optimizer_once_is_told_the_weights_did_not_change(small_train) -> None:
    calls = []

    def skipping(model, optimizer, batch, alpha):
        calls.append(1)
        if len(calls) != 4:
            return train_step(model, optimizer, batch, alpha)
        return vae_loss(batch, *model(batch), alpha)  # no step in the fourth

    result = check_training_step(skipping, small_train.images, steps=6)
    assert_fails_with(result, "Step 4: the weights did not change", "optimizer.step() was not called")


def test_a_returned_total_with_alpha_written_in_fails_at_the_probes_alphas(small_train) -> None:
    def alpha_written_in(model, optimizer, batch, alpha):
        total, recon, kl_term = vae_loss(batch, *model(batch), alpha)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        return (recon + 0.01 * kl_term).item(), recon.item(), kl_term.item()

    assert_fails_with(
        check_training_step(alpha_written_in, small_train.images, steps=3),
        "step 1 at alpha = 0.001*: the total loss expected",
        "is alpha written in as a number",
    )


def _freezing_the_encoder(model, optimizer, losses):
    model.encoder.requires_grad_(False)


def _freezing_the_model(model, optimizer, losses):
    model.requires_grad_(False)


@pytest.mark.parametrize("after", [_freezing_the_encoder, _freezing_the_model], ids=["encoder", "model"])
def test_a_step_that_leaves_weights_frozen_fails_and_is_told_so(after, small_train) -> None:
    # freezing the encoder raised out of the check; freezing the model was told its loss was detached
    result = check_training_step(_step_then(after), small_train.images, steps=3)
    assert_fails_with(result, "no longer require gradients (requires_grad_(False) left on after a step)")


def test_a_step_returning_a_named_tuple_or_keeping_a_buffer_of_its_own_passes(small_train) -> None:
    # the first raised TypeError in the check, the second RuntimeError loading the state into its copy
    losses = collections.namedtuple("Losses", "total reconstruction kl")

    def named(model, optimizer, batch, alpha):
        return losses(*train_step(model, optimizer, batch, alpha))

    def counting(model, optimizer, batch, alpha):
        if not hasattr(model, "steps_done"):
            model.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        model.steps_done += 1
        return train_step(model, optimizer, batch, alpha)

    for right in (named, counting):
        result = check_training_step(right, small_train.images, steps=20)
        assert result.passed, result.details


def test_a_step_returning_a_generator_is_told_to_return_a_tuple(small_train) -> None:
    # it failed with "got generator" and no hint
    def generating(model, optimizer, batch, alpha):
        return (loss for loss in step(model, optimizer, batch, alpha))

    assert_fails_with(
        check_training_step(generating, small_train.images, steps=3),
        "expected three losses (total, reconstruction, kl), got generator",
        "return a tuple, `return total, recon, kl`",
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_step_that_converts_the_model_is_told_so(dtype, small_train) -> None:
    # model.double() was told its loss or gradients were another formula's
    def converting(model, optimizer, batch, alpha):
        model.to(dtype)
        return step(model, optimizer, batch.to(dtype), alpha)

    assert_fails_with(
        check_training_step(converting, small_train.images, steps=3),
        f"Step 1: after the step, the model's weights are {str(dtype).removeprefix('torch.')}, where it was given "
        "them in float32",
        "the step converts the model",
    )


def test_a_step_returning_the_losses_of_its_call_before_is_told_so(small_train) -> None:
    # it was told "is alpha written in", or nothing
    kept = []

    def one_call_late(model, optimizer, batch, alpha):
        kept.append(step(model, optimizer, batch, alpha))
        return kept[-2] if len(kept) > 1 else kept[-1]

    assert_fails_with(
        check_training_step(one_call_late, small_train.images, steps=3),
        "step 1 at alpha = 0.001*: the reconstruction loss expected",
        "these are the losses of the step's call before this one",
    )


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_step_returning_the_losses_of_a_second_pass_after_its_step_is_told_so(small_train, mode) -> None:
    # it got the values alone ("expected 0.72031, got 0.704215")
    def losses_after_the_step(model, optimizer, batch, alpha):
        step(model, optimizer, batch, alpha)
        model.train(mode == "train")
        with torch.no_grad():
            losses = vae_loss(batch, *model(batch), alpha)
        model.train()
        return tuple(loss.item() for loss in losses)

    assert_fails_with(
        check_training_step(losses_after_the_step, small_train.images, steps=3),
        "step 1 at alpha = 0.001*: the reconstruction loss expected",
        "these are the losses of a second forward pass after optimizer.step()",
    )


def test_terms_of_a_second_pass_beside_the_total_of_the_first_are_told_so(small_train) -> None:
    # the total returned is the step's own, the terms are recomputed after optimizer.step(): the values alone before
    def terms_after_the_step(model, optimizer, batch, alpha):
        total, _, _ = step(model, optimizer, batch, alpha)
        with torch.no_grad():
            _, recon, kl_term = vae_loss(batch, *model(batch), alpha)
        return total, recon.item(), kl_term.item()

    assert_fails_with(
        check_training_step(terms_after_the_step, small_train.images, steps=3),
        "step 1 at alpha = 0.001*: the reconstruction loss expected",
        "this is the loss of a second forward pass after optimizer.step()",
    )


def test_a_loss_tuple_called_backward_or_model_outputs_unpacked_out_of_order_are_named(small_train) -> None:
    # torch's AttributeError and size mismatch alone before
    def tuple_backward(model, optimizer, batch, alpha):
        optimizer.zero_grad()
        losses = vae_loss(batch, *model(batch), alpha)
        losses.backward()
        optimizer.step()
        return losses

    def outputs_out_of_order(model, optimizer, batch, alpha):
        mean, log_var, reconstruction = model(batch)
        return step_on_outputs(model, optimizer, batch, alpha, (reconstruction, mean, log_var))

    assert_fails_with(
        check_training_step(tuple_backward, small_train.images, steps=3),
        "'tuple' object has no attribute 'backward'",
        "unpack them, total, reconstruction, kl = vae_loss(...)",
    )
    assert_fails_with(
        check_training_step(outputs_out_of_order, small_train.images, steps=3),
        "a latent's values (2 per image) met an image's pixels",
        "reconstruction, mean, log_var in this order",
    )


def test_a_tuple_read_by_a_name_or_detached_is_not_told_to_call_backward_on_the_total(small_train) -> None:
    def outputs_by_name(model, optimizer, batch, alpha):
        outputs = model(batch)
        return step_on_outputs(model, optimizer, batch, alpha, (outputs.reconstruction, outputs.mean, outputs.log_var))

    result = check_training_step(outputs_by_name, small_train.images, steps=3)
    assert_fails_with(result, "a tuple has no .reconstruction: model(batch) returns (reconstruction, mean, log_var)")
    assert "call total.backward()" not in result.details


def test_a_step_zeroing_the_gradients_only_on_some_calls_is_told_they_piled_up(small_train) -> None:
    # it got the general "moved differently" hint
    calls = []

    def zeroing_on_odd_calls(model, optimizer, batch, alpha):
        calls.append(1)
        total, recon, kl_term = vae_loss(batch, *model(batch), alpha)
        if len(calls) % 2:
            optimizer.zero_grad()
        total.backward()
        optimizer.step()
        return total.item(), recon.item(), kl_term.item()

    assert_fails_with(
        check_training_step(zeroing_on_odd_calls, small_train.images, steps=4),
        "Step 2: the gradients optimizer.step() used hold the step before's gradients too",
        "optimizer.zero_grad() was not called in this step",
    )


def test_a_step_under_autocast_is_told_so(small_train) -> None:
    # it was told its loss was another formula's
    def in_bf16(model, optimizer, batch, alpha):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output, mean, log_var = model(batch)
        return step_on_outputs(model, optimizer, batch, alpha, (output.float(), mean.float(), log_var.float()))

    assert_fails_with(
        check_training_step(in_bf16, small_train.images, steps=3),
        "Step 1: the forward pass ran under torch.autocast",
        "train this step in float32",
    )


def test_a_step_adding_a_weight_to_the_model_fails_without_crashing_the_check(small_train) -> None:
    # the check subtracted weight vectors of two sizes and raised
    def with_a_learned_scale(model, optimizer, batch, alpha):
        if not hasattr(model, "log_sigma"):
            model.log_sigma = torch.nn.Parameter(torch.zeros(()))
        return step(model, optimizer, batch, alpha)

    assert_fails_with(
        check_training_step(with_a_learned_scale, small_train.images, steps=3),
        "Step 1: the model holds",
        "the step adds weights to the model",
    )


def test_a_step_drawing_its_own_noise_another_way_is_told_why_it_cannot_match(small_train) -> None:
    # a right formula with noise drawn transposed was told only that its loss formula differs
    def own_noise(model, optimizer, batch, alpha):
        mean, log_var = model.encode(batch)
        latents = mean + torch.randn(mean.shape[1], mean.shape[0]).T * torch.exp(0.5 * log_var)
        return step_on_outputs(model, optimizer, batch, alpha, (model.decoder_output(latents), mean, log_var))

    assert_fails_with(
        check_training_step(own_noise, small_train.images, steps=3),
        "If your step draws z itself, or uses random numbers before model(batch)",
    )


def _step_with_an_l2_penalty(coefficient, penalised_names=lambda name: True):
    """A step minimising total + coefficient · Σ w² over the parameters whose names `penalised_names` accepts,
    returning the losses without the penalty."""

    def penalised(model, optimizer, batch, alpha):
        total, recon, kl_term = vae_loss(batch, *model(batch), alpha)
        penalty = coefficient * sum(
            parameter.pow(2).sum() for name, parameter in model.named_parameters() if penalised_names(name)
        )
        optimizer.zero_grad()
        (total + penalty).backward()
        optimizer.step()
        return total.item(), recon.item(), kl_term.item()

    return penalised


def test_a_step_minimising_an_l2_penalty_too_is_told_the_penalty(small_train) -> None:
    # was told "is optimizer.step() called twice, zero_grad() skipped, the learning rate changed ...?"
    result = check_training_step(_step_with_an_l2_penalty(1e-4), small_train.images, steps=5)
    assert_fails_with(result, "plus 0.0002 times the weights", "(0.0001 · Σ w², an L2 term or weight decay")


@pytest.mark.parametrize("coefficient", [1e-4, 1e-3])
def test_a_step_penalising_the_weights_but_not_the_biases_is_told_which(small_train, coefficient) -> None:
    # got the generic hints: the gradients beyond train_step's were a multiple of only some of the weights
    result = check_training_step(
        _step_with_an_l2_penalty(coefficient, lambda name: name.endswith("weight")), small_train.images, steps=5
    )
    assert_fails_with(
        result,
        f"plus {2 * coefficient:.3g} times the layers' weights but not their biases",
        f"({coefficient:.3g} · Σ w², an L2 term",
    )


def test_a_step_penalising_one_layer_is_told_which(small_train) -> None:
    result = check_training_step(
        _step_with_an_l2_penalty(1e-3, lambda name: name.startswith("decoder")), small_train.images, steps=5
    )
    assert_fails_with(result, "plus 0.002 times some of the parameters (decoder.")


def test_a_step_minimising_a_larger_l2_penalty_is_told_the_penalty_at_its_first_step(small_train) -> None:
    # 1e-3 moves the first step's gradients more than 1 % off reconstruction + alpha · KL: was told "the loss
    # minimised is not reconstruction + alpha · KL of this batch's outputs" with every other cause but a penalty
    result = check_training_step(_step_with_an_l2_penalty(1e-3), small_train.images, steps=5)
    assert_fails_with(
        result, "Step 1: the gradients optimizer.step() used are train_step's plus 0.002 times the weights"
    )


def _step_setting_weight_decay(model, optimizer, batch, alpha):
    for group in optimizer.param_groups:
        group["weight_decay"] = 1e-4
    return train_step(model, optimizer, batch, alpha)


@pytest.mark.parametrize(
    ("wrong", "phrase", "changed"),
    [
        (
            _step_setting_weight_decay,
            "Step 1: the weights moved differently from train_step's step from the same ",
            "weight_decay 0 → 0.0001",
        ),
        (
            _step_decaying_the_learning_rate_after_it,
            "Step 2: the weights moved differently from train_step's",
            "lr 0.001 → 0.000998",
        ),
    ],
    ids=["weight decay", "learning rate lowered after each step"],
)
def test_a_step_changing_the_optimizer_settings_is_told_which(wrong, phrase, changed, small_train) -> None:
    # was told "is optimizer.step() called twice, zero_grad() skipped, the learning rate changed ...?"
    result = check_training_step(wrong, small_train.images, steps=5)
    assert_fails_with(result, phrase, f"the step changed the optimizer's settings ({changed}", "optimizer.param_groups")


def _step_with_outputs(change):
    def step(model, optimizer, batch, alpha):
        total, recon, kl_term = vae_loss(batch, *change(*model(batch)), alpha)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        return total.item(), recon.item(), kl_term.item()

    return step


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (
            _step_with_outputs(lambda out, mean, log_var: (out, log_var, mean)),
            "the gradients of the loss given log_var where it takes mean",
        ),
        (
            _step_with_outputs(lambda out, mean, log_var: (out, mean.detach(), log_var.detach())),
            "the KL term is left out of the minimised loss, or carries no gradient (mean and log_var detached",
        ),
        (
            _step_with_outputs(lambda out, mean, log_var: (out.detach(), mean, log_var)),
            "the reconstruction term is left out of the minimised loss, or carries no gradient",
        ),
    ],
    ids=["mean and log_var swapped", "mean and log_var detached", "reconstruction detached"],
)
def test_a_step_passing_the_outputs_swapped_or_detached_is_told_so(wrong, phrase, small_train) -> None:
    # swapped got the catch-all hint; detached ones "the KL term is left out", or "the reconstruction's weight ... is
    # -9.8e-11, expected 1"
    assert_fails_with(check_training_step(wrong, small_train.images, steps=5), "Looks like:", phrase)


def test_the_check_s_own_inputs_are_refused_with_what_to_pass(mnist_train) -> None:
    from vae_lib.course.exercises.training_step import check_training_step

    def step(model, optimizer, batch, alpha):
        return train_step(model, optimizer, batch, alpha)

    refusals = [
        ((mnist_train,), TypeError, r"takes the images as a tensor, got ImageDataset: pass train_data.images\[:2048\]"),
        ((mnist_train.images[:0],), ValueError, r"needs images to train on, got none"),
        (
            (mnist_train.images[:64].float(),),
            ValueError,
            r"float images must lie in \[-1, 1\] .* got values in \[0, 255\]",
        ),
        (
            (mnist_train.images[:64], 0),
            ValueError,
            r"steps is how many steps to compare, a positive whole number: got 0",
        ),
    ]
    for arguments, kind, message in refusals:  # a TypeError or IndexError from inside the check before
        with pytest.raises(kind, match=message):
            check_training_step(step, *arguments)


def test_a_kl_averaged_over_its_dimensions_or_a_loss_rebuilt_from_its_value_is_named(small_train) -> None:
    # the first was told a weight of 0.0005 for alpha 0.001; the second only that backward() was not called
    def kl_averaged_over_everything(model, optimizer, batch, alpha):
        optimizer.zero_grad()
        reconstruction, mean, log_var = model(batch)
        recon = 0.5 * F.mse_loss(reconstruction, batch)
        kl_term = (-0.5 * (1 + log_var - mean**2 - log_var.exp())).mean()
        total = recon + alpha * kl_term
        total.backward()
        optimizer.step()
        return total.item(), recon.item(), kl_term.item()

    def rebuilt_from_its_value(model, optimizer, batch, alpha):
        optimizer.zero_grad()
        total, recon, kl_term = vae_loss(batch, *model(batch), alpha)
        torch.tensor(total.item(), requires_grad=True).backward()
        optimizer.step()
        return total.item(), recon.item(), kl_term.item()

    assert_fails_with(
        check_training_step(kl_averaged_over_everything, small_train.images, steps=3),
        "the KL's weight is alpha / 2: is it averaged over the 2 latent dimensions too",
    )
    assert_fails_with(
        check_training_step(rebuilt_from_its_value, small_train.images, steps=3),
        "called on a loss cut from the model's graph (rebuilt as torch.tensor(loss.item(), requires_grad=True)",
    )


def test_losses_returned_as_numpy_after_backward_are_told_to_detach_them(small_train) -> None:
    # the NumPy hint argued only against .detach(), which is the fix for a loss read after backward()
    def numpy_losses(model, optimizer, batch, alpha):
        optimizer.zero_grad()
        total, recon, kl_term = vae_loss(batch, *model(batch), alpha)
        total.backward()
        optimizer.step()
        return total.numpy(), recon.numpy(), kl_term.numpy()

    assert_fails_with(
        check_training_step(numpy_losses, small_train.images, steps=3), "a loss only read after backward() as"
    )


def _one_image_at_a_time(model, optimizer, batch, alpha):
    optimizer.zero_grad()
    losses = []
    for image in batch:
        total, recon, kl_term = vae_loss(image[None], *model(image[None]), alpha)
        (total / len(batch)).backward()
        losses.append(torch.stack([total, recon, kl_term]).detach())
    optimizer.step()
    return tuple(torch.stack(losses).mean(0).tolist())


def _rescaled_batch(model, optimizer, batch, alpha):
    return step(model, optimizer, (batch + 1) / 2, alpha)


def _rescaled_targets(model, optimizer, batch, alpha):
    return step_on_outputs(model, optimizer, (batch + 1) / 2, alpha, model(batch))


def _halved_targets(model, optimizer, batch, alpha):
    return step_on_outputs(model, optimizer, batch * 0.5, alpha, model(batch))


def _pixel_value_targets(model, optimizer, batch, alpha):
    return step_on_outputs(model, optimizer, (batch + 1) * 127.5, alpha, model(batch))


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_one_image_at_a_time, "the model ran 16 times, on 1 of the batch's 16 images at a time"),
        (_rescaled_batch, "the model was given (batch + 1) / 2, images in [0, 1]"),
        (_rescaled_targets, "the reconstruction is compared with (batch + 1) / 2"),
        (_halved_targets, "the reconstruction is compared with 0.5 · batch, where"),  # the generic hint before
        (_pixel_value_targets, "the reconstruction is compared with 127.5 · batch + 127.5, where"),
    ],
    ids=["a loop over the images", "a rescaled batch", "rescaled targets", "halved targets", "0-255 targets"],
)
def test_a_step_over_single_images_or_on_rescaled_images_is_named(small_train, wrong, phrase) -> None:
    # the generic hint on a loss that is not reconstruction + alpha · KL before
    result = check_training_step(wrong, small_train.images, steps=3)
    assert_fails_with(result, "Step 1: the gradients optimizer.step() used are not those of the batch's", phrase)


def test_a_shuffled_batch_is_told_its_noise_differs_not_that_its_images_do(small_train) -> None:
    # told that the model was given other images than the batch, with the same range of values as the batch's
    def shuffled(model, optimizer, batch, alpha):
        return step(model, optimizer, batch.flip(0), alpha)

    result = check_training_step(shuffled, small_train.images, steps=3)
    assert_fails_with(result, "uses random numbers before model(batch) (a shuffle), a right formula fails here too")
    assert "other images than the batch" not in result.details


def _targets_near_the_batch(model, optimizer, batch, alpha):
    return step_on_outputs(model, optimizer, 0.99 * batch, alpha, model(batch))


def _zero_targets(model, optimizer, batch, alpha):
    return step_on_outputs(model, optimizer, torch.zeros_like(batch), alpha, model(batch))


def _mean_output_added(model, optimizer, batch, alpha):
    reconstruction, mean, log_var = model(batch)
    total, recon, kl_term = vae_loss(batch, reconstruction, mean, log_var, alpha)
    optimizer.zero_grad()
    (total + 0.1 * reconstruction.mean()).backward()
    optimizer.step()
    return total.item(), recon.item(), kl_term.item()


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (_targets_near_the_batch, "the reconstruction is compared with 0.99 · batch"),  # told the KL's weight was off
        (_zero_targets, "the reconstruction is compared with a constant, 0, not with the batch"),  # "1.3e-07 · batch"
        (_mean_output_added, "or a term in x̂, such as c · mean(x̂) or c · mean(x̂ · batch), is added to the loss"),
    ],
    ids=["0.99 · batch", "zeros", "a term in x̂ added"],
)
def test_targets_near_the_batch_or_constant_and_terms_in_the_output_added_are_named(small_train, wrong, phrase) -> None:
    assert_fails_with(check_training_step(wrong, small_train.images, steps=3), phrase)
