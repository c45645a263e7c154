"""The pictures: figures (viz), latent-space snapshots taken during training, their videos, and the explorer
widget. Built on vae_lib.core only."""
