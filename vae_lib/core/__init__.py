"""The library's core: the model, the objective, the data, the configuration, training, checkpoints and the
measurements (evaluate, latent, likelihood). Nothing here draws, prints or knows about notebooks."""
