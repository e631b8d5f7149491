"""PlasticQRDQN: sb3-contrib's QR-DQN with the ELR plasticity module (online quantile network projected).

sb3-contrib builds both quantile networks (online and target) in ``QRDQNPolicy.make_quantile_net``;
ours builds ``PlasticQuantileNetwork``, sb3-contrib's ``QuantileNetwork`` that normalizes its hidden
layers in its constructor (as ``PlasticQNetwork`` does for DQN), so optimizer, target and ``load``
see the normalized network, and ``norm=None`` is sb3-contrib's network unchanged. The output layer
(``n_actions * n_quantiles`` quantiles) is a head: never normalized. The target network gets every
intervention's edit on the same entries (the registry's ``target_of``).

Needs sb3-contrib (``pip install sb3-contrib``, in the ``test`` extra); ``plastic_rl.agents`` imports this
module only when ``PlasticQRDQN`` is first used.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sb3_contrib import QRDQN
from sb3_contrib.qrdqn.policies import CnnPolicy, MultiInputPolicy, QRDQNPolicy, QuantileNetwork

from plastic_rl.agents.base import PlasticMixin
from plastic_rl.agents.policies import NormalizedNetwork, NormalizedPolicy
from plastic_rl.agents.registry import ALGOS


class PlasticQuantileNetwork(NormalizedNetwork, QuantileNetwork):
    pass


class _QuantileNetworkNorm(NormalizedPolicy):
    net_args: dict[str, Any]  # set by QRDQNPolicy.__init__
    replaces = ("make_quantile_net",)

    def make_quantile_net(self) -> PlasticQuantileNetwork:
        # sb3-contrib's QRDQNPolicy.make_quantile_net with our class: called for the online and the target network
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return PlasticQuantileNetwork(**net_args, **self._norm_kwargs).to(self.device)


class PlasticQRDQNPolicy(_QuantileNetworkNorm, QRDQNPolicy):
    pass


class PlasticQRDQNCnnPolicy(_QuantileNetworkNorm, CnnPolicy):
    pass


class PlasticQRDQNMultiInputPolicy(_QuantileNetworkNorm, MultiInputPolicy):
    pass


class PlasticQRDQN(PlasticMixin, QRDQN):
    """QR-DQN whose quantile network keeps its plasticity: ``PlasticQRDQN("CartPole-v1").learn(50_000)``."""

    policy_aliases: ClassVar[dict[str, type]] = ALGOS["PlasticQRDQN"].policy_aliases()
