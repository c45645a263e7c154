"""Entry point for `python -m vae_lib`."""

import sys

from vae_lib.cli import main

sys.exit(main())
