"""Loading a checkpoint with its algorithm's own ``load``, and its networks as the registry lists them."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

from plastic_rl.agents import registry
from plastic_rl.checkpoints.zips import Algo, Checkpoint, fail


def load(ckpt: Checkpoint) -> Any:
    """The algorithm's own ``load`` on the CPU, env-less, with a one-transition replay buffer."""
    algo = ckpt.algo
    try:
        cls = algo.load_class()
    except ImportError as exc:
        raise fail(ckpt.path, f"a {algo.name} checkpoint needs the {algo.module.split('.')[0].replace('_', '-')} package ({exc})") from None
    const = lambda _: 0.0  # noqa: E731 -- schedules play no part in a forward pass
    custom: dict[str, Any] = {k: v for k, v in (("learning_rate", 0.0), ("lr_schedule", const), ("clip_range", const)) if k in ckpt.data}
    if registry.ACTOR_CRITIC_TOPS <= algo.structure and "policy_kwargs" in ckpt.data:
        # Orthogonal init of a NatureCNN is a QR per layer (~2 s); the loaded parameters overwrite it anyway.
        from stable_baselines3.common.save_util import json_to_data

        kwargs = json_to_data(json.dumps({"policy_kwargs": ckpt.data["policy_kwargs"]})).get("policy_kwargs")
        if isinstance(kwargs, dict):
            custom["policy_kwargs"] = {**kwargs, "ortho_init": False}
    overrides: dict[str, Any] = {"buffer_size": 1} if algo.off_policy else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls.load(ckpt.path, device="cpu", custom_objects=custom, print_system_info=False, **overrides)
    except Exception as exc:
        raise fail(ckpt.path, f"cannot load as {algo.name}: {type(exc).__name__}: {exc}") from None


Forward = Callable[[Any, Any], Any]


def networks(model: Any, algo: Algo) -> list[tuple[str, Any, Forward]]:
    """(name, module, forward) for every network of the agent (the registry's); forwards sample nothing."""
    return [(spec.name, spec.module(model.policy), spec.forward) for spec in algo.networks]


def reference_actions(model: Any, algo: Algo, obs: Any) -> Any:
    """The actor's deterministic action in the critic's (scaled) action space, for critic inputs."""
    import torch

    if algo.actions is None:
        raise ValueError(f"{algo.name}'s networks read no actions")
    with torch.no_grad():
        return algo.actions(model.policy, obs)
