"""Figures: class colours, legends, grey ranges, and each decoded image placed where its latent lies."""

import matplotlib

matplotlib.use("Agg")

from dataclasses import replace
from types import MappingProxyType, SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex

from vae_lib import VAE
from vae_lib.core.data import to_pixels
from vae_lib.core.evaluate import reconstruct
from vae_lib.core.history import EpochRecord, History
from vae_lib.core.latent import decode_latents, dimension_label, traversal_images
from vae_lib.pictures import viz


def test_the_latent_scatter_draws_classes_interleaved_and_names_each_in_the_legend() -> None:
    labels = np.repeat(np.arange(10), 50)
    points = np.random.default_rng(0).normal(size=(500, 2))
    figure = viz.plot_latent_scatter(points, labels, [str(digit) for digit in range(10)])
    axis = figure.axes[0]
    (collection,) = axis.collections
    drawn_colours = [to_hex(colour) for colour in collection.get_facecolors()]
    last_class_colour = viz.class_colour(9)
    # drawn class after class, the last 50 points would all be 9s, on top of every other class
    assert drawn_colours[-50:].count(last_class_colour) < 20
    assert sorted(drawn_colours) == sorted(viz.class_colour(label) for label in labels)
    assert [text.get_text() for text in axis.get_legend().get_texts()] == [str(digit) for digit in range(10)]
    assert axis.get_xlabel() and axis.get_ylabel() and axis.get_title()


def test_figures_name_the_reconstruction_term_of_the_model_s_likelihood() -> None:
    assert viz.recon_label() == "reconstruction (0.5 MSE)" and viz.total_label() == "total loss (0.5 MSE + alpha KL)"
    assert viz.recon_label("bernoulli") == "reconstruction (BCE, nats per image)"
    assert viz.total_label("bernoulli") == "total loss (BCE + alpha KL)"


def _model(latent_dim: int) -> VAE:
    torch.manual_seed(0)
    model = VAE(latent_dim=latent_dim, widths=(4, 8, 8, 16)).eval()
    with torch.no_grad():  # a decoder whose images change clearly with z
        model.from_latent.weight *= 30
    return model


def test_class_colours_are_tab10_in_order_and_repeat_after_ten_classes() -> None:
    tab10 = [to_hex(colour) for colour in plt.get_cmap("tab10").colors]
    assert [viz.class_colour(index) for index in range(12)] == tab10 + tab10[:2]


def test_the_scatter_legend_marks_each_class_in_its_colour() -> None:
    labels = np.array([3, 7, 3, 0])
    figure = viz.plot_latent_scatter(np.zeros((4, 2)), labels, [f"class {c}" for c in range(10)])
    legend = figure.axes[0].get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["class 0", "class 3", "class 7"]
    assert [to_hex(handle.get_color()) for handle in legend.legend_handles] == [viz.class_colour(c) for c in (0, 3, 7)]
    plt.close(figure)


def test_an_image_grid_tiles_rows_and_columns_in_reading_order_with_bright_padding() -> None:
    images = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2) * 10  # every pixel different
    grid = viz.image_grid(images)
    assert grid.shape == (4, 6)
    for row in range(2):
        for column in range(3):
            assert np.array_equal(grid[2 * row : 2 * row + 2, 2 * column : 2 * column + 2], images[row, column])
    padded = viz.image_grid(images, padding=1)
    assert padded.shape == (6, 9)
    assert np.array_equal(padded[3:5, 6:8], images[1, 2])
    assert (padded[2, :] == images.max()).all() and (padded[:, 2] == images.max()).all()


def test_images_are_shown_in_grey_from_0_to_255_whatever_their_range() -> None:
    images = np.stack([np.full((28, 28), 100, np.uint8), np.linspace(0, 50, 28 * 28).reshape(28, 28).astype(np.uint8)])
    figure = viz.show_images(images, columns=2, titles=["flat", "dark"])
    for axis, pixels, title in zip(figure.axes, images, ["flat", "dark"]):
        (shown,) = axis.images
        assert shown.get_cmap().name == "gray" and (shown.norm.vmin, shown.norm.vmax) == (0, 255)
        assert np.array_equal(shown.get_array(), pixels) and axis.get_title() == title
    plt.close(figure)


def test_the_manifold_puts_each_decoded_image_where_its_latent_lies() -> None:
    model = _model(3)
    figure = viz.plot_latent_manifold(model, grid_size=3, limit=2.0, dims=(2, 0))
    axis = figure.axes[0]
    (shown,) = axis.images
    assert shown.get_cmap().name == "gray" and (shown.norm.vmin, shown.norm.vmax) == (0, 255)
    # tiles decoded at -2, 0 and +2 are centred at those values on the axes: the image reaches half a tile beyond
    assert shown.get_extent() == [-3, 3, -3, 3] and shown.origin == "upper" and axis.get_ylim() == (-3, 3)
    assert (axis.get_xlabel(), axis.get_ylabel()) == (dimension_label(2), dimension_label(0))
    pixels = shown.get_array()
    # top left: z3 (the x axis) = -2 and z1 (the y axis) = +2; bottom right: z3 = +2, z1 = -2; z2 held at 0
    top_left, bottom_right = decode_latents(model, torch.tensor([[2.0, 0.0, -2.0], [-2.0, 0.0, 2.0]]))
    assert np.abs(pixels[:28, :28].astype(int) - top_left.astype(int)).max() <= 1
    assert np.abs(pixels[-28:, -28:].astype(int) - bottom_right.astype(int)).max() <= 1
    assert np.abs(top_left.astype(int) - bottom_right.astype(int)).max() > 20
    plt.close(figure)


def test_kl_bars_grey_out_dimensions_below_the_threshold() -> None:
    figure = viz.plot_kl_per_dimension(np.array([0.5, 0.1, 0.05, 2.0]), threshold=0.1)
    bars = figure.axes[0].patches
    assert [bar.get_height() for bar in bars] == [0.5, 0.1, 0.05, 2.0]
    assert [to_hex(bar.get_facecolor()) for bar in bars] == [to_hex(c) for c in ("tab:blue",) * 2 + ("0.7", "tab:blue")]
    plt.close(figure)


def test_kl_weights_run_from_dark_to_yellow_in_viridis() -> None:
    colours = viz.weight_colours([0.1, 0.001, 1.0])
    assert colours[0.001] == plt.cm.viridis(0.0) and colours[0.1] == plt.cm.viridis(0.5)
    assert colours[1.0] == plt.cm.viridis(1.0)


def test_each_traversal_column_is_labelled_with_the_value_it_decodes() -> None:
    model = _model(2)
    figure = viz.plot_traversals(model, limit=2.0, steps=5)
    axis = figure.axes[0]
    assert [label.get_text() for label in axis.get_xticklabels()] == ["-2.0", "-1.0", "+0.0", "+1.0", "+2.0"]
    assert [label.get_text() for label in axis.get_yticklabels()] == [dimension_label(0), dimension_label(1)]
    pixels = axis.images[0].get_array()
    first_dimension = traversal_images(model, torch.zeros(2), 0, [-2.0, -1.0, 0.0, 1.0, 2.0])
    assert np.abs(pixels[:28, :28].astype(int) - first_dimension[0].astype(int)).max() <= 1
    assert np.abs(pixels[:28, -28:].astype(int) - first_dimension[-1].astype(int)).max() <= 1
    plt.close(figure)


def test_video_frames_are_captioned_with_their_place_counted_from_one() -> None:
    frames = [(0, np.zeros((4, 8, 3), np.uint8)), (7, np.full((4, 8, 3), 255, np.uint8))]
    figure = viz.show_video_frames(frames, 8, "two frames")
    assert [axis.get_title() for axis in figure.axes] == ["frame 1 of 8", "frame 8 of 8"]
    with pytest.raises(ValueError, match=r"^frame 8 is not among the video's 1 frames: pass the video's own frame"):
        viz.show_video_frames(frames, 1, "two frames")  # captioned "frame 8 of 1" before
    with pytest.raises(ValueError, match=r"takes still_frames\(path, indices\)'s \(index, image\) pairs, at least one"):
        viz.show_video_frames([], 8, "no frames")
    plt.close("all")


def test_reconstruction_rows_are_named_and_show_their_images_in_order() -> None:
    originals, decoded = torch.full((3, 1, 28, 28), -1.0), torch.full((3, 1, 28, 28), 1.0)
    default = viz.plot_reconstructions(originals, {"decoded": decoded})
    named = viz.plot_reconstructions(originals, {"decoded": decoded}, first_row="prior samples")
    for figure, first in ((default, "original"), (named, "prior samples")):
        rows = [axis for axis in figure.axes if axis.get_ylabel()]
        assert [axis.get_ylabel() for axis in rows] == [first, "decoded"]
        assert [int(axis.images[0].get_array().max()) for axis in rows] == [0, 255]  # black originals, white row
        plt.close(figure)


def test_figures_name_a_learner_s_wrong_arguments(small_test) -> None:
    images, model = small_test.images[:4], VAE(latent_dim=2)
    refusals = [
        (lambda: viz.show_images(images[0]), r"takes a batch .* got shape \(28, 28\): for one image pass image"),
        (lambda: viz.show_images(images[:0]), r"takes a batch of one image or more"),
        (lambda: viz.show_images(images, columns=0), r"columns is the images per row, a whole number >= 1: got 0"),
        (lambda: viz.show_images(images, titles=["a", "b"]), r"titles needs one text per image: got 2 for 4 images"),
        (lambda: viz.plot_traversals(model, steps=0), r"steps is the images per traversal, a whole number >= 2"),
        (lambda: viz.plot_latent_manifold(model, grid_size=0), r"grid_size is the images per side .* got 0"),
        (lambda: viz.plot_latent_manifold(VAE(latent_dim=3), dims=(1, 1)), r"a grid varies two different dimensions"),
    ]  # an "Invalid shape (28,)", a gridspec error, a ZeroDivisionError, an IndexError, a singular matrix, an
    # empty figure and a figure of one dimension against itself before
    for draw, message in refusals:
        with pytest.raises(ValueError, match=message):
            draw()
    figure = viz.show_images(images, titles=small_test.labels[:4])  # a tensor of labels: "ambiguous" before
    assert [axis.get_title() for axis in figure.axes[:4]] == [str(int(label)) for label in small_test.labels[:4]]
    plt.close("all")


def test_a_live_plot_or_a_config_with_wrong_arguments_is_refused_when_made_not_mid_fit(small_test) -> None:
    from vae_lib import TrainConfig

    with pytest.raises(ValueError, match=r"draws its images in one row: give it a few, test_data.subset\(8\), not 256"):
        viz.LiveTrainingPlot(small_test)  # failed at the first redraw, mid-fit, before
    with pytest.raises(TypeError, match=r"takes a few test images .* such as test_data.images\[:8\] .*, got list$"):
        viz.LiveTrainingPlot([small_test.images[0]])
    assert len(viz.LiveTrainingPlot(small_test.images[:40]).images) == 40  # as many as one likes, as a tensor
    with pytest.raises(ValueError, match=r"every is how many steps between redraws, a whole number >= 1: got 0"):
        viz.LiveTrainingPlot(small_test.images[:8], every=0)
    with pytest.raises(ValueError, match=r"must be > 0 \(and finite\), got '0.1'\."):
        TrainConfig(alpha="0.1")  # "got 0.1", a number that is > 0, before
    plt.close("all")


def test_a_scatter_or_reconstruction_rows_of_uneven_counts_are_named(small_test) -> None:
    means, names = torch.zeros(10, 2), small_test.class_names
    with pytest.raises(ValueError, match=r"one label for each, got means of shape \(10, 2\) and \(5,\) labels"):
        viz.plot_latent_scatter(means, small_test.labels[:5], names)  # an IndexError before
    with pytest.raises(ValueError, match=r"labels must index the 10 class names \(0 to 9\), got labels from 0 to 12"):
        viz.plot_latent_scatter(means, torch.tensor([0] * 9 + [12]), names)
    originals = small_test.images[:4]
    with pytest.raises(ValueError, match=r"one image per original \(4\): 'epoch 1' has 3"):
        viz.plot_reconstructions(originals, {"epoch 1": originals[:3]})
    plt.close("all")


def test_the_likelihood_histogram_leaves_room_above_its_bars_for_the_legend() -> None:
    # the legend covered the top of the histogram's peak and the mean's line (notebook 07)
    nll = torch.cat([torch.full((400,), 85.0), torch.linspace(30, 180, 600)])
    labels = torch.arange(1000) % 10
    figure = viz.plot_negative_log_likelihoods(nll, labels, [str(c) for c in range(10)], {"a reference": 86.0})
    spread = figure.axes[0]
    tallest = max(patch.get_height() for patch in spread.patches)
    assert spread.get_ylim()[1] >= 1.4 * tallest
    legend_box = spread.get_legend().get_window_extent(figure.canvas.get_renderer())
    top_of_bars = spread.transData.transform((0, tallest))[1]
    assert legend_box.y0 >= top_of_bars  # the legend sits wholly above the tallest bar
    plt.close(figure)


def test_plot_metrics_given_something_else_than_a_history_says_what_to_pass() -> None:
    with pytest.raises(TypeError, match=r"plot_metrics takes a run's History \(trainer.history\), got dict"):
        viz.plot_metrics({})  # AttributeError 'steps' before


def test_a_reconstruction_row_named_like_the_originals_is_refused_not_drawn_in_their_place() -> None:
    originals, reconstructions = torch.zeros(3, 1, 28, 28), torch.ones(3, 1, 28, 28)
    with pytest.raises(ValueError, match=r"a row of reconstructions is named 'original', the name of the originals'"):
        viz.plot_reconstructions(originals, {"original": reconstructions})
    with pytest.raises(TypeError, match=r"reconstructions is a dict of named rows, e\.g\. \{'2-D': images\}, got a "):
        viz.plot_reconstructions(originals, reconstructions)


def _records(*counts: int | None) -> list[EpochRecord]:
    return [
        EpochRecord(epoch, epoch * 10, 1.0, 1e-3, 0.1, 0.09, 5.0, 0.08, count) for epoch, count in enumerate(counts, 1)
    ]


@pytest.mark.parametrize(
    ("counts", "label"),
    [
        ((None, None), "test (every test image)"),
        ((10_000, 10_000), "test (10,000 test images)"),
        ((2000, 2000, 10_000), "test (the first 2,000 test images, the last epoch on 10,000)"),
        ((2000, 2000), "test (2,000 test images)"),  # a run stopped before its last epoch: none covers every image
        ((2000, None), "test (the first 2,000 test images, the last epoch on all)"),
        ((2000, 500, 10_000), "test (the first 2,000 test images, from epoch 2 on 500, the last epoch on 10,000)"),
        ((None, None, 10_000, 10_000), "test (every test image, from epoch 3 on 10,000)"),  # an old run continued
        ((2000, 2000, 10_000, 10_000), "test (the first 2,000 test images, from epoch 3 on 10,000)"),
    ],
)
def test_the_test_curve_says_how_many_test_images_every_record_covers(counts, label) -> None:
    history = History(epochs=_records(*counts))
    figure = viz.plot_metrics(history)
    legend = {text.get_text() for text in figure.axes[0].get_legend().get_texts()}
    assert {text.replace("\n", " ") for text in legend} == {label}  # wrapped to the panel's width
    plt.close(figure)


def test_the_sweep_s_training_figure_says_what_its_records_cover() -> None:
    model = VAE(latent_dim=2, widths=(4, 8, 8, 16))
    point = SimpleNamespace(latent_dim=2, alpha=1e-3, model=model, history=History(epochs=_records(None, None)))
    figure = viz.plot_sweep_training([point])
    assert figure.axes[0].get_title() == "2-D, on every test image (the dot: the last epoch)"  # "the first 0" before
    point.history = History(epochs=_records(2000, 2000, 10_000))
    figure = viz.plot_sweep_training([point])
    title = "2-D, on the first 2,000 test images, the last epoch on 10,000 (the dot: the last epoch)"
    assert figure.axes[0].get_title() == title
    plt.close("all")


@pytest.mark.parametrize(("grid_size", "limit"), [(5, 2.0), (20, 2.5), (2, 1.0)])
def test_each_manifold_tile_is_centred_on_the_axes_at_the_latent_it_decodes(grid_size, limit) -> None:
    figure = viz.plot_latent_manifold(_model(2), grid_size=grid_size, limit=limit)
    left, right, bottom, top = figure.axes[0].images[0].get_extent()
    tile = (right - left) / grid_size  # tiles are 28 pixels each, side by side
    centres = [left + tile * (column + 0.5) for column in range(grid_size)]
    assert centres == pytest.approx(np.linspace(-limit, limit, grid_size).tolist())  # column 0 was at -1.6, not -2
    assert (bottom, top) == (left, right)
    plt.close(figure)


def test_negative_log_likelihoods_are_one_number_per_labelled_image() -> None:
    labels = torch.arange(40) % 10
    bounds = -torch.linspace(80, 120, 40).unsqueeze(1) - torch.tensor([[3.0, 1.0, 0.0]])  # k = 1, 10, 100
    references, names = {"Burda et al. k=1": 86.76}, [str(digit) for digit in range(10)]
    with pytest.raises(ValueError, match=r"got shape \(40, 3\) \(a bounds matrix: pass one column, the most samples'"):
        viz.plot_negative_log_likelihoods(-bounds, labels, names, references)  # its mean was of every k's bounds
    figure = viz.plot_negative_log_likelihoods((-bounds[:, -1]).numpy(), labels.numpy(), names, references)
    texts = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert texts[0] == f"this model's mean, {float(-bounds[:, -1].mean()):.2f}" == "this model's mean, 100.00"
    with pytest.raises(ValueError, match=r"one of each per test image: got 40 and 10"):
        viz.plot_negative_log_likelihoods(-bounds[:, -1], labels[:10], names, references)
    spoilt = -bounds[:, -1].clone()
    spoilt[7] = float("nan")
    with pytest.raises(ValueError, match=r"1 of the 40 negative log-likelihoods are not finite \(first at image 7\)"):
        viz.plot_negative_log_likelihoods(spoilt, labels, names, references)
    plt.close("all")


def test_a_history_in_nats_is_not_labelled_as_0_5_mse() -> None:
    bernoulli = History(epochs=[EpochRecord(1, 10, 60.0, 1e-3, 61.2, 61.0, 20.0, 60.1, 10_000)])
    with pytest.raises(ValueError, match=r"the history reaches a reconstruction of 61, more than a 0.5 MSE of images"):
        viz.plot_metrics(bernoulli)  # labelled "reconstruction (0.5 MSE)" before
    with pytest.raises(
        ValueError, match=r"the history of '2d' reaches a reconstruction of 61, .* \(e.g. 'bernoulli'\)"
    ):
        viz.plot_time_to_quality({"2d": bernoulli}, {})
    with pytest.raises(ValueError, match=r"\(e.g. 'bernoulli'\), and draw runs of different likelihoods in separate"):
        viz.plot_time_to_quality({"2d": History(epochs=_records(10_000)), "bernoulli": bernoulli}, {})
    figure = viz.plot_metrics(bernoulli, likelihood="bernoulli")
    assert figure.axes[1].get_ylabel() == "reconstruction (BCE, nats per image)"
    gaussian = History(epochs=_records(10_000))  # 0.09: a 0.5 MSE
    assert viz.plot_metrics(gaussian).axes[1].get_ylabel() == "reconstruction (0.5 MSE)"
    plt.close("all")


def test_a_live_plot_checks_its_images_against_the_model_before_the_first_step(small_train, small_test) -> None:
    from vae_lib import TrainConfig, Trainer

    config = TrainConfig(latent_dim=2, conditional=True, widths=(4, 8, 8, 16), log_every=4, step_test_images=64)

    def trainer(plot: viz.LiveTrainingPlot) -> Trainer:
        return Trainer(config, train_data=small_train, test_data=small_test, hooks=[plot], progress=False)

    without_labels = trainer(viz.LiveTrainingPlot(small_test.images[:4], every=2))
    with pytest.raises(ValueError, match=r"conditioned on labels"):
        without_labels.fit(1)  # raised at step 2, mid-epoch, before
    assert without_labels.step == 0
    plot = viz.LiveTrainingPlot(small_test.subset(4), every=2)  # the labels with them
    with_labels = trainer(plot)
    with_labels.fit(1)
    expected = reconstruct(with_labels.evaluated_model, small_test.subset(4))
    shown = plot.reconstruction_axis.images[0].get_array()
    assert np.abs(shown.astype(int) - np.concatenate(list(to_pixels(expected)), axis=1).astype(int)).max() <= 1
    wide = trainer(viz.LiveTrainingPlot(torch.zeros(4, 1, 32, 32), every=2))
    with pytest.raises(ValueError, match=r"32"):
        wide.fit(1)
    assert wide.step == 0
    plt.close("all")


def test_a_model_s_outputs_are_drawn_as_they_come_tracked_by_autograd_or_in_bf16() -> None:
    from vae_lib.core.objective import kl_per_dimension

    model = _model(2)
    images = torch.rand(6, 1, 28, 28) * 2 - 1
    mean, log_var = model.encode(images)  # tracked by autograd: numpy() refused them before
    assert mean.requires_grad
    kl = kl_per_dimension(mean, log_var)
    bars = [patch.get_height() for patch in viz.plot_kl_per_dimension(kl).axes[0].patches]
    assert bars == pytest.approx(kl.detach().tolist())
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    scatter = viz.plot_latent_scatter(mean.to(torch.bfloat16), labels, ["a", "b", "c"]).axes[0].collections[0]
    drawn, expected = np.asarray(scatter.get_offsets()), mean.detach().to(torch.bfloat16).float().numpy()
    assert sorted(map(tuple, drawn.tolist())) == sorted(map(tuple, expected.tolist()))  # drawn interleaved by class
    assert len(viz.plot_latent_scatter(mean, labels.float(), ["a", "b", "c"]).axes[0].collections[0].get_offsets()) == 6
    with pytest.raises(ValueError, match=r"labels are class indices, whole numbers from 0, got float32 ones"):
        viz.plot_latent_scatter(mean, labels.float() + 0.5, ["a", "b", "c"])
    sevens = viz.plot_latent_scatter(mean, (labels == 2).numpy(), ["other", "2"]).axes[0]  # bools: classes 0 and 1
    assert [text.get_text() for text in sevens.get_legend().get_texts()] == ["other", "2"]
    assert viz.plot_kl_per_dimension(kl, threshold=np.float32(0.01)).axes[0].patches  # a NumPy number, as it comes
    assert viz.plot_latent_manifold(model, grid_size=2, limit=torch.tensor(2.0)).axes[0].images
    plt.close("all")


def test_time_to_quality_shows_its_target_and_names_what_it_cannot_draw() -> None:
    history = History(
        epochs=[
            EpochRecord(epoch, epoch, 60.0 * epoch, 1e-3, 0.03, recon, 5.0, 0.03, 10_000)
            for epoch, recon in enumerate((0.035, 0.031, 0.029), 1)
        ]
    )
    figure = viz.plot_time_to_quality({"8d": history}, {"8d": (0.0732, "the 2-D reference's best")})
    low, high = figure.axes[0].get_ylim()
    assert low <= 0.029 and high >= 0.0732  # the target was drawn above the axes' top, yet in the legend
    with pytest.raises(ValueError, match=r"takes the runs to draw as \{name: History\}, at least one"):
        viz.plot_time_to_quality({}, {})
    with pytest.raises(ValueError, match=r"the run '2d' has no epoch records: give a History of one epoch or more"):
        viz.plot_time_to_quality({"2d": History()}, {})
    with pytest.raises(
        ValueError, match=r"targets maps a run's name to \(test reconstruction, what it is\).*'2d': 0.07"
    ):
        viz.plot_time_to_quality({"2d": history}, {"2d": 0.07})
    plt.close("all")


def test_a_conditional_model_given_to_a_plain_model_s_figure_is_pointed_at_the_class_grid() -> None:
    from vae_lib.core.model import ConditionalVAE

    conditional = ConditionalVAE(latent_dim=2, widths=(4, 8, 8, 16), classes=10)
    for draw, name in ((viz.plot_latent_manifold, "plot_latent_manifold"), (viz.plot_traversals, "plot_traversals")):
        with pytest.raises(ValueError, match=rf"^{name} decodes latents without a class, .* plot_class_grid\(model, "):
            draw(conditional)  # "pass labels, a Batch(images, labels) or an ImageDataset", which neither takes


def test_channels_last_images_are_told_to_take_the_channel_out() -> None:
    with pytest.raises(
        ValueError, match=r"got \(4, 28, 28, 1\), channels last .*: take the channel out, images\[..., 0\]"
    ):
        viz.show_images(torch.zeros(4, 28, 28, 1))  # told "got 28 channels ... average them" before
    assert len(viz.show_images(torch.zeros(4, 28, 28, 1)[..., 0]).axes) == 10
    with pytest.raises(
        ValueError, match=r"got \(4, 28, 28, 3\), channels last .*: average them, images.mean\(dim=-1\)$"
    ):
        viz.show_images(torch.zeros(4, 28, 28, 3))
    plt.close("all")


def test_a_1d_latent_scatter_names_its_one_dimension_and_no_projection() -> None:
    means, labels = torch.linspace(-2, 2, 6).unsqueeze(1), torch.tensor([0, 1, 2, 0, 1, 2])
    axis = viz.plot_latent_scatter(means, labels, ["a", "b", "c"]).axes[0]
    assert axis.get_xlabel() == "$z_1$" and axis.get_ylabel() == "(a 1-D space: every point at 0)"  # "$z_2$" before
    assert axis.get_title() == "latent means of test images"  # "1-D latent means (PCA projection)" before
    assert sorted(axis.collections[0].get_offsets()[:, 0].tolist()) == pytest.approx(means[:, 0].tolist())
    plt.close("all")


def test_nan_is_refused_where_a_figure_would_draw_it_as_something_else() -> None:
    images = torch.zeros(3, 1, 28, 28)
    images[1, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match=r"^1 of the images to draw hold NaN or infinite values"):
        viz.show_images(images)  # drawn as black paper before
    one = torch.zeros(28, 28)
    one[3:6, 4] = float("nan")  # NaN in three rows of one image
    with pytest.raises(ValueError, match=r"^1 of the images to draw hold NaN or infinite values"):
        to_pixels(one)
    means = torch.zeros(4, 2)
    means[2, 1] = float("inf")
    with pytest.raises(ValueError, match=r"1 of the 4 latent means are NaN or infinite \(the first, row 2\)"):
        viz.plot_latent_scatter(means, torch.zeros(4, dtype=torch.long), ["a"])  # 3 of 4 points drawn before
    with pytest.raises(ValueError, match=r"one finite KL per latent dimension .*, got shape \(3,\) holding 1 NaN or"):
        viz.plot_kl_per_dimension(torch.tensor([1.0, float("nan"), 2.0]))  # a grey "collapsed" bar before
    with pytest.raises(ValueError, match=r"one finite KL per latent dimension .*, got shape \(5, 2\)"):
        viz.plot_kl_per_dimension(torch.ones(5, 2))
    history = History(epochs=_records(10_000, 10_000))
    history.epochs[0] = replace(history.epochs[0], test_total=float("nan"))
    with pytest.raises(ValueError, match=r"^the test figures of epoch 1 are NaN or infinite: the run diverged there"):
        viz.plot_metrics(history)  # matplotlib's "Axis limits cannot be NaN or Inf" before
    plt.close("all")


def test_figure_settings_that_draw_nothing_true_are_refused() -> None:
    from vae_lib.core.conditional import neighbour_class_agreement
    from vae_lib.core.model import ConditionalVAE

    for limit in (0, -2.0, float("nan")):
        with pytest.raises(ValueError, match=r"limit is how far the grid reaches from 0 along each axis, a number > 0"):
            viz.plot_latent_manifold(_model(2), grid_size=3, limit=limit)  # identical tiles, or flipped axes, before
    with pytest.raises(ValueError, match=r"threshold is the KL in nats below which a dimension counts as collapsed"):
        viz.plot_kl_per_dimension(torch.ones(3), threshold=float("nan"))  # every dimension greyed out before
    conditional = ConditionalVAE(latent_dim=2, widths=(4, 8, 8, 16), classes=10)
    with pytest.raises(ValueError, match=r"has 10 classes in 2 rows: give one class name per class \(got 3"):
        viz.plot_class_grid(conditional, torch.zeros(2, 2), ["0", "1", "2"])  # 7 untitled columns before
    with pytest.raises(ValueError, match=r"an image's neighbours are the other images: give two or more, got 1"):
        neighbour_class_agreement(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), 1)  # "lie in [1, 0]"
    plt.close("all")


def test_figures_of_nothing_or_of_mismatched_parts_say_what_to_give() -> None:
    from vae_lib.core.model import ConditionalVAE

    empty = [
        (lambda: viz.plot_rate_distortion([]), r"plot_rate_distortion draws sweep points \(load_sweep\(\)\): give at"),
        (lambda: viz.plot_sweep_training(iter([])), r"plot_sweep_training draws sweep points .*at least one, got none"),
        (lambda: viz.plot_kl_per_dimension_by_weight([]), r"plot_kl_per_dimension_by_weight draws sweep points of one"),
        (lambda: viz.plot_per_class_error({}, ["a"]), r"plot_per_class_error draws each model's error per class: give"),
        (lambda: viz.plot_latent_space_comparison({}, None), r"plot_latent_space_comparison draws one scatter per"),
        (
            lambda: viz.plot_reconstructions(torch.zeros(0, 1, 28, 28), {}),
            r"got shape \(0, 1, 28, 28\): no image: give",
        ),
        (
            lambda: viz.plot_reconstructions(torch.zeros(28, 28), {}),
            r"got shape \(28, 28\): one image: pass image\.unsq",
        ),
        (lambda: viz.plot_reconstructions(torch.zeros(4, 784), {}), r"\(4, 784\): flattened rows: pass images.view\("),
    ]  # each met matplotlib's "Number of columns must be a positive integer", an IndexError or a ZeroDivisionError
    for draw, message in empty:
        with pytest.raises(ValueError, match=message):
            draw()
    with pytest.raises(TypeError, match=r"plot_rate_distortion draws sweep points .*: give a list of them, got a str"):
        viz.plot_rate_distortion("points")  # "got an empty str" before
    with pytest.raises(TypeError, match=r"one line per model .*, given as \{name: \.\.\.\}: got a list"):
        viz.plot_log_likelihood_bounds([1.0])
    with pytest.raises(TypeError, match=r"the bounds of 'm' are a list: give them as \{samples k: bound\}"):
        viz.plot_log_likelihood_bounds({"m": [-90.0, -88.0]})  # "got dict", the outer one, before
    with pytest.raises(
        ValueError, match=r"one error per class \(10, per_class_recon_error's\): 'mine' has shape \(5,\)"
    ):
        viz.plot_per_class_error({"mine": torch.ones(5)}, [str(digit) for digit in range(10)])
    points = [SimpleNamespace(alpha=1e-3, kl_per_dimension=torch.ones(size)) for size in (2, 8)]
    with pytest.raises(
        ValueError, match=r"draws points of one latent size, got sizes \[2, 8\]: give the points of one"
    ):
        viz.plot_kl_per_dimension_by_weight(points)  # matplotlib's "shape mismatch" before
    conditional = ConditionalVAE(latent_dim=2, widths=(4, 8, 8, 16), classes=10)
    digits = [str(digit) for digit in range(10)]
    with pytest.raises(TypeError, match=r"plot_rewrites takes images with their labels, .*got Tensor"):
        viz.plot_rewrites(conditional, torch.zeros(2, 1, 28, 28), digits)
    pair = (torch.zeros(2, 1, 28, 28), torch.tensor([3, 5]))  # images and labels side by side, as as_batch takes
    assert len(viz.plot_rewrites(conditional, pair, digits).axes) == 2 * 11
    # containers other than lists and dicts, drawn as before: a dict's values, an array of points, any mapping
    model = SimpleNamespace(likelihood="gaussian")
    sweep = {
        alpha: SimpleNamespace(latent_dim=2, alpha=alpha, test_recon=0.08, test_kl=5.0, model=model)
        for alpha in (1e-3, 1e-2)
    }
    assert len(viz.plot_rate_distortion(sweep.values()).axes[0].lines) >= 1
    assert len(viz.plot_rate_distortion(np.array(list(sweep.values()), dtype=object)).axes[0].lines) >= 1
    assert len(viz.plot_per_class_error(MappingProxyType({"mine": torch.ones(10)}), digits).axes[0].patches) == 10
    plt.close("all")


def test_the_metrics_say_how_many_points_lie_above_their_cut_axes() -> None:
    from vae_lib.core.history import StepRecord

    steps = [
        StepRecord(step, step / 10, 1.0, total, total * 0.9, 5.0, total, total * 0.9, 5.0)
        for step, total in ((1, 0.5), (2, 0.2), (3, 0.1), (4, 0.09))
    ]
    history = History(steps=steps, epochs=_records(10_000))  # test total 0.1, recon 0.09
    axes = viz.plot_metrics(history).axes
    # total: the axis ends at 1.6 x 0.1; train totals 0.5 and 0.2 lie above it (the first steps', cut off unsaid before)
    assert axes[0].get_xlabel() == "epoch\n(2 of 5 points lie above the axis)"  # under the axis: no legend covers it
    # and it starts below the lowest figure drawn, the train curve's end (0.09 here), not below the best test figure
    assert axes[0].get_ylim() == pytest.approx((0.09 * 0.95, 0.16))
    assert axes[2].get_xlabel() == "epoch"  # the KL's axis is not cut
    plt.close("all")
