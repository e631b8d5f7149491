"""Test fixtures shared by several test modules (pytest puts this folder on sys.path)."""

import gymnasium as gym
import numpy as np


class TinyImageEnv(gym.Env):
    """36x36x3 uint8 frames (NatureCNN's smallest input), two actions, 20-step episodes; seeded by reset()."""

    observation_space = gym.spaces.Box(0, 255, (36, 36, 3), dtype=np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.integers(0, 256, (36, 36, 3), dtype=np.uint8), {}

    def step(self, action):
        self.t += 1
        return self.np_random.integers(0, 256, (36, 36, 3), dtype=np.uint8), float(action), False, self.t >= 20, {}
