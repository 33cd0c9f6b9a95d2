"""``python -m origin``: the ``origin`` command."""

import sys

from origin.service.cli import main

sys.exit(main())
