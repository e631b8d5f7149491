"""``python -m plastic_rl.train``."""

from plastic_rl.train.cli import main

main()
