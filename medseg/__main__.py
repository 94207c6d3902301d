"""Allow ``python -m medseg``."""

from __future__ import annotations

import sys

from medseg.cli import main

sys.exit(main())
