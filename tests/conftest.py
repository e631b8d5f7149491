import atexit
import os
import shutil
import tempfile

import pytest
import torch

# The networks in tests are tiny: one thread avoids OpenMP spin-waits when the 2 cores are shared
# (with a second thread, a busy neighbour made SB3 runs 5-30x slower here).
torch.set_num_threads(1)

# SB3's logger makes a folder for every verbose run without a log folder ($SB3_LOGDIR, else
# /tmp/SB3-<date>): one folder for the whole session, subprocesses included (set before the test
# modules copy os.environ for their subprocesses), removed when the session ends.
_SB3_LOGS = tempfile.mkdtemp(prefix="plastic_rl_tests_sb3_logs_")
os.environ["SB3_LOGDIR"] = _SB3_LOGS
atexit.register(shutil.rmtree, _SB3_LOGS, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the marks
def pytest_collection_modifyitems(items):
    """pyproject runs the suite with ``--dist loadgroup``: test by test, so both cores finish together. The tests
    that share a module-scoped fixture (a trained run, a built wheel) go to one worker, so it is built once."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        if any(d[-1].scope in ("module", "package", "session") and d[-1].baseid for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
