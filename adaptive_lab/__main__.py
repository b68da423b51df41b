"""``python -m adaptive_lab`` runs the CLI."""

import sys

from adaptive_lab.cli.main import main

sys.exit(main())
