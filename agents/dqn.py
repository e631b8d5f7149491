"""PlasticDQN: SB3's DQN with the ELR plasticity module (online Q-network projected, target kept consistent)."""

from __future__ import annotations

from typing import Any, ClassVar

from stable_baselines3 import DQN

from plastic_rl.agents.base import PlasticMixin, as_tensor, recent_rows
from plastic_rl.agents.controller import Network
from plastic_rl.agents.policies import PlasticDQNCnnPolicy, PlasticDQNMultiInputPolicy, PlasticDQNPolicy


def replay_batch(buffer, count: int, keys: tuple[str, ...] = ("observations",)) -> dict[str, Any] | None:
    """The most recent ``count`` transitions of a replay buffer, by position (no sampling)."""
    if buffer is None or not (buffer.full or buffer.pos):
        return None
    out = {}
    for key in keys:
        array = getattr(buffer, key)
        if isinstance(array, dict):
            out[key] = {k: recent_rows(v, buffer.pos, count, buffer.full) for k, v in array.items()}
        else:
            out[key] = recent_rows(array, buffer.pos, count, buffer.full)
    return out


class PlasticDQN(PlasticMixin, DQN):
    """DQN whose Q-network keeps its plasticity: ``PlasticDQN("CartPole-v1").learn(100_000)``."""

    policy_aliases: ClassVar[dict[str, type]] = {
        "MlpPolicy": PlasticDQNPolicy,
        "CnnPolicy": PlasticDQNCnnPolicy,
        "MultiInputPolicy": PlasticDQNMultiInputPolicy,
    }

    def _plastic_networks(self) -> list[Network]:
        # The target network gets every intervention's edit on the same entries (interventions' mirrors):
        # what was re-initialized matches the online network, the rest keeps its lag until SB3's next copy.
        policy = self.policy
        return [Network("q_net", policy.q_net, policy.optimizer, lambda q_net, obs: q_net(obs), primary=True, mirrors=(policy.q_net_target,))]

    def _diagnostic_inputs(self) -> Any:
        batch = replay_batch(self.replay_buffer, self.diagnostics_batch)
        if batch is None:
            return None
        obs = batch["observations"]
        return as_tensor(obs, self.device)
