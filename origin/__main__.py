import sys

from origin.service.cli import main

sys.exit(main())
