"""``python -m unsupseg.cli`` (and ``torchrun ... -m unsupseg.cli train ...``)."""

import sys

from unsupseg.cli import main

sys.exit(main())
