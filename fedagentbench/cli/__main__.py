"""``python -m fedagentbench.cli``: the same as the ``fedagentbench`` console script."""

import sys

from fedagentbench.cli import main

sys.exit(main())
