"""Entry point for `python -m vae_lib`."""

import sys

try:
    from vae_lib.tools.cli import main
except KeyboardInterrupt:  # Ctrl-C while torch is being imported, before any command has begun
    print("stopped while starting, before the command began; nothing was changed", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
