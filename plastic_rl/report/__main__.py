"""``python -m plastic_rl.report``."""

from plastic_rl.report.cli import main

main()
