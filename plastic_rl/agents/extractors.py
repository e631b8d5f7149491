"""Features extractors for small observations that SB3's NatureCNN (>= 36x36 inputs) does not take."""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class MinAtarCNN(BaseFeaturesExtractor):
    """The MinAtar paper's network body (Young & Tian 2019): one 3x3 convolution with 16 channels,
    stride 1, ReLU, flattened (16 x 8 x 8 = 1024 features for 10x10 inputs); SB3's ``net_arch=[128]``
    adds the paper's hidden layer. Its ``cnn`` is an ``nn.Sequential``, so the plasticity presets
    normalize and project the convolution like any other hidden layer."""

    def __init__(self, observation_space: gym.spaces.Box, channels: int = 16):
        c, h, w = observation_space.shape
        super().__init__(observation_space, features_dim=channels * (h - 2) * (w - 2))
        self.cnn = nn.Sequential(nn.Conv2d(c, channels, kernel_size=3, stride=1), nn.ReLU(), nn.Flatten())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.cnn(observations.float())
