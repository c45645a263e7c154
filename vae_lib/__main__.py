"""Entry point for `python -m vae_lib`."""

import sys

from vae_lib.tools.cli import main

sys.exit(main())
