import atexit
import os
import shutil
import tempfile

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
