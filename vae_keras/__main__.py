"""`python -m vae_keras` runs the command line."""

import sys

from vae_keras.cli import main

sys.exit(main())
