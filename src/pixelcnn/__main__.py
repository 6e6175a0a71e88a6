"""``python -m pixelcnn`` runs the command line (also under torchrun)."""

import sys

from pixelcnn.cli.main import main

sys.exit(main())
