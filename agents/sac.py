"""PlasticSAC: SB3's SAC with the ELR plasticity module on the actor and the critic."""

from __future__ import annotations

from typing import Any, ClassVar

from stable_baselines3 import SAC

from plastic_rl.agents.base import PlasticMixin, as_tensor
from plastic_rl.agents.controller import Network
from plastic_rl.agents.dqn import replay_batch
from plastic_rl.agents.policies import PlasticSACCnnPolicy, PlasticSACMultiInputPolicy, PlasticSACPolicy


def actor_forward(actor, batch) -> Any:
    # get_action_dist_params, not forward(): forward samples an action and would draw from torch's RNG
    return actor.get_action_dist_params(batch["observations"])


def critic_forward(critic, batch) -> Any:
    return critic(batch["observations"], batch["actions"])


class PlasticSAC(PlasticMixin, SAC):
    """SAC whose actor and critic keep their plasticity: ``PlasticSAC("Pendulum-v1").learn(20_000)``."""

    policy_aliases: ClassVar[dict[str, type]] = {
        "MlpPolicy": PlasticSACPolicy,
        "CnnPolicy": PlasticSACCnnPolicy,
        "MultiInputPolicy": PlasticSACMultiInputPolicy,
    }

    def _plastic_networks(self) -> list[Network]:
        # A features extractor shared with the actor is trained by the actor's optimizer (as in SB3).
        shared = ("features_extractor.*",) if self.policy.share_features_extractor else ()
        return [
            Network("critic", self.critic, self.critic.optimizer, critic_forward, primary=True, exclude=shared, mirrors=(self.critic_target,)),
            Network("actor", self.actor, self.actor.optimizer, actor_forward),
        ]

    def _diagnostic_inputs(self) -> Any:
        batch = replay_batch(self.replay_buffer, self.diagnostics_batch, keys=("observations", "actions"))
        if batch is None:
            return None
        return {key: as_tensor(value, self.device) for key, value in batch.items()}
