"""``python -m plastic_rl.diagnose``."""

import sys

from plastic_rl.diagnose.cli import main

sys.exit(main())
