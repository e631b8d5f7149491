"""Forward passes that run an SB3 network once for diagnostics, sampling nothing.

Plain attribute calls on the networks (no SB3 import), so the algorithm registry can name them and
``diagnose`` can use them before SB3 is loaded. Each takes (module, inputs); ``inputs`` is a batch of
observations, or ``{"observations": ..., "actions": ...}`` for networks that also read actions.
"""

from __future__ import annotations

from typing import Any


def obs_forward(net, obs) -> Any:
    """A network that maps observations to its outputs (Q-networks, ARS's policy)."""
    return net(obs)


def actor_critic_forward(policy, obs) -> Any:
    """Run the features extractor(s), both MLP branches and both heads once, sampling nothing."""
    features = policy.extract_features(obs)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        pi_features, vf_features = features
        latent_pi = policy.mlp_extractor.forward_actor(pi_features)
        latent_vf = policy.mlp_extractor.forward_critic(vf_features)
    return policy.action_net(latent_pi), policy.value_net(latent_vf)


def actor_forward(actor, batch) -> Any:
    """SAC's actor: get_action_dist_params, not forward(), which samples an action from torch's RNG."""
    return actor.get_action_dist_params(batch["observations"])


def deterministic_actor_forward(actor, batch) -> Any:
    """TD3's (and DDPG's) actor, deterministic, up to its output squash.

    SB3 ends ``mu`` with an ``nn.Tanh`` that maps the output into the action box: an output transform,
    not hidden units (SAC's squash is in its distribution, PlasticTD3's is ``Squash``). Stopping before
    it gives vanilla and plastic actors the same measured layers, so their diagnostics compare.
    """
    from torch import nn  # here: the registry names these forwards before torch (or SB3) is imported

    from plastic_rl.agents.td3 import Squash

    features = actor.extract_features(batch["observations"], actor.features_extractor)
    mu = actor.mu
    if isinstance(mu, nn.Sequential) and len(mu) > 1 and type(mu[-1]) in (nn.Tanh, Squash):
        return mu[:-1](features)  # pre-squash actions, the same for either
    return mu(features)


def critic_forward(critic, batch) -> Any:
    """A critic of (observation, action) pairs: every Q-head."""
    return critic(batch["observations"], batch["actions"])


def stochastic_actions(policy, obs) -> Any:
    """A stochastic actor's deterministic action (its mean), in the critic's (scaled) action space."""
    return policy.actor(obs, deterministic=True)


def deterministic_actions(policy, obs) -> Any:
    """A deterministic actor's action, in the critic's (scaled) action space."""
    return policy.actor(obs)
