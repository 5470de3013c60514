"""``python -m modelplane``: the same as the ``modelplane`` command."""

import sys

from modelplane.cli.main import main

sys.exit(main())
