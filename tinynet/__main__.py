"""``python -m tinynet train ...``: the same as the ``tinynet`` console script."""

import sys

from .cli import main

sys.exit(main())
