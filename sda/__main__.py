"""``python -m sda`` is ``python -m sda.SdA``."""

import sys

from sda.cli import main

sys.exit(main())
