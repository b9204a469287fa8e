"""``python -m scalelab`` runs the command line."""

import sys

from scalelab.cli import main

if __name__ == "__main__":
    sys.exit(main())
