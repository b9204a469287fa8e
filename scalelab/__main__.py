"""``python -m scalelab`` runs the command line."""

import sys

from scalelab.cli import main

sys.exit(main())
