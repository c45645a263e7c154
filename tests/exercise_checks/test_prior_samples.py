"""The check of sampling from the prior: the reference passes, and each named mistake is recognised by its hint."""

import pytest
import torch
import torch.nn.functional as F

from vae_lib.course.exercises import check_sample_prior

from .answers import assert_fails_with


def test_the_sampling_reference_passes() -> None:
    assert check_sample_prior(lambda model, count, generator: model.sample(count, generator=generator)).passed


def _one_sample_at_a_time(model, count, g):
    return model.decode(torch.stack([torch.randn(model.latent_dim, generator=g) for _ in range(count)]))


def _decoded_one_by_one(model, count, g):
    latents = torch.randn(count, model.latent_dim, generator=g)
    return torch.cat([model.decode(z.unsqueeze(0)) for z in latents])


def _one_more_decoded_the_last_dropped(model, count, g):
    return model.decode(torch.randn(count + 1, model.latent_dim, generator=g))[:count]


@pytest.mark.parametrize(
    "right",
    [
        _one_sample_at_a_time,
        lambda model, count, g: model.decode(torch.randn(model.latent_dim, count, generator=g).T),
        lambda model, count, g: model.decode(torch.normal(0.0, 1.0, (count, model.latent_dim), generator=g)),
        _decoded_one_by_one,
        _one_more_decoded_the_last_dropped,
    ],
    ids=["one sample at a time", "transposed", "torch.normal", "decoded one by one", "one more decoded, one dropped"],
)
def test_a_prior_sample_drawn_with_the_generator_another_way_passes(right) -> None:
    result = check_sample_prior(right)
    assert result.passed, result.details


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (lambda model, count, g: torch.randn(count, model.latent_dim, generator=g), "these are the latents"),
        (lambda model, count, g: model.decode(torch.rand(count, model.latent_dim, generator=g)), "torch.rand"),
        (lambda model, count, g: model.decode(torch.randn(count, model.latent_dim)), "the generator is not used"),
        (
            lambda model, count, g: model.train().decode(torch.randn(count, model.latent_dim, generator=g)),
            "training mode",
        ),
    ],
)
def test_sampling_mistakes_are_named(wrong, phrase) -> None:
    assert_fails_with(check_sample_prior(wrong), phrase)


@pytest.mark.parametrize(
    ("wrong", "phrase"),
    [
        (
            lambda model, count, g: model.decode(2 * torch.randn(count, model.latent_dim, generator=g)),
            "the decoder is given 2·z",
        ),
        (
            lambda model, count, g: model.decode(0.5 * torch.randn(count, model.latent_dim, generator=g)),
            "the decoder is given 0.5·z",
        ),
        (lambda model, count, g: model.decode(torch.zeros(count, model.latent_dim)), "every sample decodes z = 0"),
    ],
    ids=["2·z", "0.5·z", "zeros"],
)
def test_latents_that_are_not_drawn_from_the_standard_normal_are_named(wrong, phrase) -> None:
    result = check_sample_prior(wrong)
    assert_fails_with(result, "Case *2-D model", f"Looks like: {phrase}")
    assert "the generator is not used" not in result.details


def test_a_latent_size_written_in_fails_the_check_on_the_other_model_and_says_so() -> None:
    result = check_sample_prior(lambda model, count, g: model.decode(torch.randn(count, 2, generator=g)))
    assert_fails_with(
        result,
        "Case *8-D model, 4 samples, generator seeded 1*: your function raised ModelInputError",
        "z has 2 values per sample, where this model's latent space has 8",
        "model.latent_dim",
    )


def _global_one_at_a_time(model, count, g):
    return model.decode(torch.stack([torch.randn(model.latent_dim) for _ in range(count)]))


def _doubled_one_at_a_time(model, count, g):
    return model.decode(torch.stack([2 * torch.randn(model.latent_dim, generator=g) for _ in range(count)]))


def _uniform_one_at_a_time(model, count, g):
    return model.decode(torch.stack([torch.rand(model.latent_dim, generator=g) * 2 - 1 for _ in range(count)]))


def _same_draw_for_every_sample(model, count, g):
    return model.decode(torch.randn(1, model.latent_dim, generator=g).expand(count, -1))


def _one_more_decoded_the_first_repeated(model, count, g):
    images = model.decode(torch.randn(count + 1, model.latent_dim, generator=g))
    return torch.cat([images[:1], images[: count - 1]])


def _own_generator_one_at_a_time(model, count, g):
    own = torch.Generator().manual_seed(0)
    return model.decode(torch.stack([torch.randn(model.latent_dim, generator=own) for _ in range(count)]))


def _one_value_for_every_dimension(model, count, g):
    return model.decode(torch.randn(count, 1, generator=g).repeat(1, model.latent_dim))


def _training_mode_one_at_a_time(model, count, g):
    model.train()
    return model.decode(torch.stack([torch.randn(model.latent_dim, generator=g) for _ in range(count)]))


@pytest.mark.parametrize(
    "wrong",
    [
        _global_one_at_a_time,
        _doubled_one_at_a_time,
        _uniform_one_at_a_time,
        _same_draw_for_every_sample,
        _one_more_decoded_the_first_repeated,
        _own_generator_one_at_a_time,
        _one_value_for_every_dimension,
        _training_mode_one_at_a_time,
    ],
    ids=[
        "global generator",
        "2·z",
        "uniform",
        "one z for all",
        "one more decoded, the first repeated",
        "a generator of its own",
        "one value for every dimension",
        "training mode",
    ],
)
def test_a_prior_sample_drawn_another_way_still_fails_when_it_is_wrong(wrong) -> None:
    assert_fails_with(check_sample_prior(wrong), "-D model, ", " samples, generator seeded ")


def test_a_sample_that_seeds_the_generator_again_fails_and_is_told_so() -> None:
    # seeded from the generator's initial seed, it drew the same z at every call, and passed
    def reseeding(model, count, generator):
        torch.manual_seed(generator.initial_seed())
        return model.decode(torch.randn(count, model.latent_dim))

    assert_fails_with(check_sample_prior(reseeding), "the first draws of a generator seeded 0", "seeded again in your")


def test_a_sample_copying_the_generators_state_fails_because_calls_repeat() -> None:
    def copying(model, count, generator):
        copy = torch.Generator()
        copy.set_state(generator.get_state())
        return model.decode(torch.randn(count, model.latent_dim, generator=copy))

    assert_fails_with(check_sample_prior(copying), "two calls with the same generator gave the same images")


def _truncated(model, count, g):
    latents = torch.randn(10 * count, model.latent_dim, generator=g)
    return model.decode(latents)[latents.norm(dim=1).argsort()[:count]]


def _brightest_kept(model, count, g):
    images = model.decode(torch.randn(4 * count, model.latent_dim, generator=g))
    return images[images.flatten(1).mean(dim=1).argsort(descending=True)[:count]]


@pytest.mark.parametrize("wrong", [_truncated, _brightest_kept], ids=["smallest |z| kept", "brightest kept"])
def test_a_sampler_choosing_which_of_more_samples_to_keep_fails(wrong) -> None:
    # the prior was judged on all the latents decoded, not on those of the images kept
    assert_fails_with(check_sample_prior(wrong), "-D model, ", " samples, generator seeded ")


def test_a_sample_repeated_is_told_so() -> None:
    def first_twice(model, count, generator):
        images = model.decode(torch.randn(count, model.latent_dim, generator=generator))
        return torch.cat([images[:1], images[: count - 1]])

    assert_fails_with(check_sample_prior(first_twice), "samples 1 and 2 are the same image")


def test_samples_of_another_shape_fail_though_their_pixels_are_right() -> None:
    def squeezed(model, count, generator):
        return model.decode(torch.randn(count, model.latent_dim, generator=generator)).squeeze(1)

    assert_fails_with(check_sample_prior(squeezed), "the shape is (6, 28, 28), expected (6, 1, 28, 28)")


def _antithetic(model, count, g):
    half = torch.randn((count + 1) // 2, model.latent_dim, generator=g)
    return model.decode(torch.cat([half, -half])[:count])


def _antithetic_interleaved(model, count, g):
    latents = []
    for _ in range(count):
        latents.append(torch.randn(model.latent_dim, generator=g) if len(latents) % 2 == 0 else -latents[-1])
    return model.decode(torch.stack(latents))


@pytest.mark.parametrize(
    ("antithetic", "phrase"),
    [(_antithetic, "the z of sample 4 is minus that of sample 1"), (_antithetic_interleaved, "sample 2 is minus")],
    ids=["halves", "interleaved"],
)
def test_antithetic_samples_fail_as_draws_that_are_not_independent(antithetic, phrase) -> None:
    # each looks N(0, I) and they passed; the interleaved ones were judged as drawn another way
    assert_fails_with(check_sample_prior(antithetic), phrase, "antithetic pairs z, -z")


def test_zeros_decoded_one_at_a_time_are_a_repeated_sample_not_antithetic_pairs() -> None:
    # z = 0 is its own negation: such samples were told they were antithetic pairs
    def zeros_one_at_a_time(model, count, g):
        return torch.cat([model.decode(torch.zeros(1, model.latent_dim)) for _ in range(count)])

    result = check_sample_prior(zeros_one_at_a_time)
    assert_fails_with(result, "samples 1 and 2 are the same image")
    assert "antithetic" not in result.details


def _centred(model, count, g):
    latents = torch.randn(count, model.latent_dim, generator=g)
    return model.decode(latents - latents.mean(dim=0))


def _standardised(model, count, g):
    latents = torch.randn(count, model.latent_dim, generator=g)
    return model.decode((latents - latents.mean(dim=0)) / latents.std(dim=0))


def _unit_length_over_the_samples(model, count, g):
    return model.decode(F.normalize(torch.randn(count, model.latent_dim, generator=g), dim=0))


@pytest.mark.parametrize(
    "normalised",
    [_centred, _standardised, _unit_length_over_the_samples],
    ids=["centred", "standardised", "unit length over the samples"],  # the last had no hint
)
def test_latents_centred_or_standardised_over_the_samples_fail_and_are_named(normalised) -> None:
    # their 2,000 draws look N(0, I), so they passed, judged as drawn another way
    assert_fails_with(check_sample_prior(normalised), "z is centred, standardised or normalised over the samples")


def test_images_rescaled_to_zero_one_and_latents_rearranged_are_named() -> None:
    # both failed without a hint
    def rescaled(model, count, g):
        return (model.decode(torch.randn(count, model.latent_dim, generator=g)) + 1) / 2

    def sorted_in_each_dimension(model, count, g):
        return model.decode(torch.randn(count, model.latent_dim, generator=g).sort(dim=0).values)

    assert_fails_with(check_sample_prior(rescaled), "the images are rescaled to [0, 1], (x + 1) / 2")
    assert_fails_with(check_sample_prior(sorted_in_each_dimension), "z holds the generator's draws, but arranged")


def test_a_transposed_draw_wrong_for_another_reason_is_not_told_its_draws_are_rearranged() -> None:
    # a transposed draw is a right way to draw; here the generator's state is copied, so calls repeat
    def transposed_from_a_copy(model, count, g):
        copy = torch.Generator().set_state(g.get_state())
        return model.decode(torch.randn(model.latent_dim, count, generator=copy).T)

    result = check_sample_prior(transposed_from_a_copy)
    assert not result.passed
    assert "arranged otherwise" not in result.details


def test_a_clipped_prior_fails_and_is_named() -> None:
    # at ±2 it passed: no 2-D draw went beyond, and the 8-D draws were judged drawn another way
    def clipped(model, count, g):
        return model.decode(torch.randn(count, model.latent_dim, generator=g).clamp(-2, 2))

    assert_fails_with(check_sample_prior(clipped), "z is clipped at ±2")


def test_a_sampler_converting_the_model_fails_without_crashing_the_check() -> None:
    # the check decoded its known mistakes with the converted model and raised
    def in_float64(model, count, g):
        model.double()
        return model.decode(torch.randn(count, model.latent_dim, generator=g, dtype=torch.float64))

    assert_fails_with(check_sample_prior(in_float64), "leaves the model's weights in float64")


def test_latents_given_to_the_whole_model_are_told_to_use_decode() -> None:
    # the model's own refusal alone (torch's conv2d error, before the model checked its input)
    def whole_model(model, count, generator):
        return model(torch.randn(count, model.latent_dim, generator=generator))[0]

    assert_fails_with(check_sample_prior(whole_model), "Looks like: model(z) runs the whole VAE", "model.decode(z)")


@pytest.mark.parametrize(
    ("transform", "phrase"),
    [
        (torch.square, "the decoder is given z² of the generator's draws z"),
        (torch.abs, "the decoder is given |z| of the generator's draws z"),
        (torch.sigmoid, "the decoder is given sigmoid(z) of the generator's draws z"),
        (torch.exp, "the decoder is given exp(z) of the generator's draws z"),
        (torch.tanh, "the decoder is given tanh(z) of the generator's draws z"),
        (lambda z: z.softmax(dim=1), "the decoder is given a softmax of the generator's draws z"),
        (lambda z: 1 + z, "the decoder is given z + 1: the prior N(0, I) is centred on 0"),
        (lambda z: z - 0.5, "the decoder is given z - 0.5: the prior N(0, I) is centred on 0"),
    ],
    ids=["z²", "|z|", "sigmoid", "exp", "tanh", "softmax", "1 + z", "z - 0.5"],
)
def test_draws_transformed_before_decoding_are_named(transform, phrase) -> None:
    # each failed with no hint
    def transformed(model, count, generator):
        return model.decode(transform(torch.randn(count, model.latent_dim, generator=generator)))

    assert_fails_with(check_sample_prior(transformed), f"Looks like: {phrase}")


@pytest.mark.parametrize(
    "positional",
    [
        lambda model, count, g: model.decode(torch.randn(count, model.latent_dim, g)),
        lambda model, count, g: model.decode(torch.randn((count, model.latent_dim), g)),
        lambda model, count, g: model.decode(torch.normal(0.0, 1.0, (count, model.latent_dim), g)),
    ],
)
def test_a_generator_passed_by_position_is_told_to_pass_it_by_name(positional) -> None:
    # torch's TypeError alone ("argument 'size' failed to unpack ... torch._C.Generator")
    assert_fails_with(check_sample_prior(positional), "passed by position", "generator=generator")


def test_a_generator_given_as_a_seed_or_by_a_wrong_name_is_not_told_it_was_passed_by_position() -> None:
    def seeded_with_it(model, count, generator):
        torch.manual_seed(generator)
        return model.decode(torch.randn(count, model.latent_dim))

    def misnamed(model, count, generator):
        return model.decode(torch.randn(count, model.latent_dim, gen=generator))

    assert_fails_with(check_sample_prior(seeded_with_it), "given where a number belongs", "seed nothing")
    result = check_sample_prior(misnamed)
    assert "passed by position" not in result.details and "got (int, int, gen=" in result.details


def test_the_global_generator_just_seeded_or_images_clamped_to_zero_one_are_named() -> None:
    # the first was told the learner had seeded a generator afresh; the second that two samples were the same image
    def global_draws(model, count, generator):
        return model.decode(torch.randn(count, model.latent_dim))

    torch.manual_seed(0)  # as the notebook's first cells do
    assert_fails_with(check_sample_prior(global_draws), "torch's global one right after torch.manual_seed(0)")
    clamped = check_sample_prior(
        lambda model, count, g: model.decode(torch.randn(count, model.latent_dim, generator=g)).clamp(0, 1)
    )
    assert_fails_with(clamped, "are the images clamped to [0, 1]")


def test_images_of_zeros_are_told_so_as_well_as_a_clamp() -> None:
    # the first case's decoded pixels are all below 0, so clamping them gives zeros too: told only of a clamp before
    zeros = check_sample_prior(lambda model, count, generator: torch.zeros(count, 1, 28, 28))
    assert_fails_with(zeros, "every pixel is 0, where this model draws all of them below 0", "or made as zeros?")


def test_images_passed_through_the_whole_model_again_are_named() -> None:
    # told that the generator was not used, though z was drawn with it
    def through_the_model(model, count, generator):
        z = torch.randn(count, model.latent_dim, generator=generator)
        return model(model.decode(z))[0]

    result = check_sample_prior(through_the_model)
    assert_fails_with(result, "the whole model ran, model(images)", "model.decode(z)")
    assert "the generator is not used" not in result.details


def _unit_length(model, count, generator):
    z = torch.randn(count, model.latent_dim, generator=generator)
    return model.decode(z / z.norm(dim=1, keepdim=True))


def _standardised_in_each_sample(model, count, generator):
    z = torch.randn(count, model.latent_dim, generator=generator)
    return model.decode((z - z.mean(1, keepdim=True)) / z.std(1, keepdim=True))


@pytest.mark.parametrize(
    ("normalised", "phrase"),
    [
        (_unit_length, "each z scaled to length 1"),
        (_standardised_in_each_sample, "each z centred and scaled over its own dimensions"),
    ],
)
def test_z_normalised_in_each_sample_is_named(normalised, phrase) -> None:
    # a 2-D z standardised in each row was told it held antithetic pairs, one of unit length nothing at all
    result = check_sample_prior(normalised)
    assert_fails_with(result, "z is normalised in each sample", phrase, "lengths that vary around √2")
    assert "antithetic" not in result.details


def test_a_decoding_in_pieces_or_of_normalised_z_passed_through_the_whole_model_is_named() -> None:
    # told that the generator was not used
    def pieces_through_the_model(model, count, generator):
        z = torch.randn(count, model.latent_dim, generator=generator)
        return model(torch.cat([model.decode(piece) for piece in z.split(2)]))[0]

    def normalised_through_the_model(model, count, generator):
        return model(_unit_length(model, count, generator))[0]

    result = check_sample_prior(pieces_through_the_model)
    assert_fails_with(result, "the whole model ran")
    assert "the generator is not used" not in result.details
    assert_fails_with(
        check_sample_prior(normalised_through_the_model), "the whole model ran", "z is normalised in each sample"
    )


def test_the_whole_model_run_per_sample_or_twice_over_is_named_and_the_samplers_own_z_judged() -> None:
    # the model's own decodings interleaved with the sampler's were judged as the sampler's (antithetic pairs), and
    # three decodings were told the generator was unused
    def per_sample(model, count, generator):
        z = torch.randn(count, model.latent_dim, generator=generator)
        z = (z - z.mean(1, keepdim=True)) / z.std(1, keepdim=True)
        return torch.cat([model(model.decode(z[i : i + 1]))[0] for i in range(count)])

    def twice_over(model, count, generator):
        return model(model(model.decode(torch.randn(count, model.latent_dim, generator=generator)))[0])[0]

    result = check_sample_prior(per_sample)
    assert_fails_with(result, "the whole model ran, model(images)", "z is normalised in each sample")
    assert "antithetic" not in result.details
    result = check_sample_prior(twice_over)
    assert_fails_with(result, "the whole model ran, model(images)")
    assert "the generator is not used" not in result.details


def test_two_decodings_averaged_are_not_told_the_whole_model_ran() -> None:
    def averaged(model, count, generator):
        first, second = (torch.randn(count, model.latent_dim, generator=generator) for _ in range(2))
        return (model.decode(first) + model.decode(second)) / 2

    assert "the whole model ran" not in check_sample_prior(averaged).details


def test_one_latent_for_all_the_samples_is_told_the_shape_and_transposed_latents_are_not_told_a_size() -> None:
    # count left out: one image, as before the model checked its latents (not "give a batch of one")
    one = check_sample_prior(lambda model, count, g: model.decode(torch.randn(model.latent_dim, generator=g)))
    assert_fails_with(one, "the shape is (1, 1, 28, 28), expected (6, 1, 28, 28)")
    transposed = check_sample_prior(
        lambda model, count, g: model.decode(torch.randn(model.latent_dim, count, generator=g))
    )
    assert_fails_with(transposed, "or 6 latents transposed (z.T gives one row per latent)")
    assert "values per sample" not in transposed.details


def test_a_sampler_decoding_one_latent_a_call_passes_on_both_models() -> None:
    # in 8-D, four torch.randn(8) differ from one torch.randn(4, 8) of the same generator: judged by the latents decoded
    def one_a_call(model, count, generator):
        return torch.cat([model.decode(torch.randn(model.latent_dim, generator=generator)) for _ in range(count)])

    result = check_sample_prior(one_a_call)
    assert result.passed, result.details
