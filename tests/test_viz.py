"""Figures: a latent scatter whose legend names every class and whose classes are drawn interleaved."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.colors import to_hex

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
