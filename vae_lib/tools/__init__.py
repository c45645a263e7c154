"""The tools: the command line and what only it runs (reproduce, benchmark, sweep training). They may use
every other part of vae_lib; nothing imports them but the command line."""
