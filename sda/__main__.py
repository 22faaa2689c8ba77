"""``python -m sda`` is ``python -m sda.SdA``."""

import sys

from sda.launch import main

sys.exit(main())
