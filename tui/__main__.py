"""``python -m tui``: the same as the ``videosim`` command."""

import sys

from tui.cli import main

sys.exit(main())
