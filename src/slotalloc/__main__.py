"""``python -m slotalloc``: the command line, as the ``slotalloc`` script."""

import sys

from slotalloc.cli import main

sys.exit(main())
