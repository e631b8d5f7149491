import torch

# The networks in tests are tiny: one thread avoids OpenMP spin-waits when the 2 cores are shared
# (with a second thread, a busy neighbour made SB3 runs 5-30x slower here).
torch.set_num_threads(1)
