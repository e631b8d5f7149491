"""Seeds x arms of ``plastic_rl.train`` runs -> numbers: ``python -m plastic_rl.report DIR... [--by KEY,...]``.

One job per module: ``runs`` reads run folders, ``stats`` computes the scores and rliable's intervals,
``tables`` writes ``report.md`` and the CSVs, ``plots`` the PNGs, and ``cli`` aggregates and is the entry
point. Its public names are importable from here (``from plastic_rl import report; report.report(...)``).
"""

from plastic_rl.report.cli import *  # noqa: F403 -- the public names, listed once in cli.__all__
from plastic_rl.report.cli import __all__ as __all__
