"""SB3 policies and sub-networks that insert a normalization into their networks as they are built.

Each class is SB3's own plus one keyword, ``norm`` ("layer", "rms" or None). The normalization goes
in where SB3 builds the networks, *before* SB3 builds the optimizers: PPO's policy normalizes its
features extractor and MLP branches in ``_build_mlp_extractor``; DQN's Q-networks and SAC's actor
and critics are our subclasses of SB3's ``QNetwork``, ``Actor`` and ``ContinuousCritic`` that
normalize themselves in their constructor. So optimizers, target networks and every object SB3 can
``save``/``load`` (algorithm, policy, ``q_net``, ``actor``, ``critic``) rebuild the same architecture,
and ``norm=None`` is SB3's network unchanged (same parameters from the same seed).

Saving a policy or a sub-network also stores its ``layers.architecture()``; ``load`` compares it with
what it rebuilt and raises on a mismatch. (Affine-free norms have no state-dict entries, so SB3's
strict ``load_state_dict`` alone would accept a network without them.)

A normalized policy also builds its Adam/AdamW with ``fused=True`` (RMSprop, A2C's: ``foreach=True``, as it has
no fused CPU kernel) unless ``optimizer_kwargs`` chooses an implementation (``fused``/``foreach``): the same update computed in one kernel per tensor instead of
~10 Python-dispatched ops, which on small RL networks pays for the normalization and ELR's projection
(``python -m plastic_rl.tools.bench_agents gradstep``). ``optimizer_kwargs=dict(fused=False)`` restores
torch's default; the ``"none"`` preset never changes it, so it stays identical to SB3. For the same
reason a normalized policy's action distribution skips torch's argument checks (``distributions``: the
same values; a divergence is still caught).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    ContinuousCritic,
    MultiInputActorCriticPolicy,
)
from stable_baselines3.common.utils import get_device
from stable_baselines3.dqn.policies import CnnPolicy as DQNCnnPolicy
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from stable_baselines3.dqn.policies import MultiInputPolicy as DQNMultiInputPolicy
from stable_baselines3.sac.policies import Actor, SACPolicy
from stable_baselines3.sac.policies import CnnPolicy as SACCnnPolicy
from stable_baselines3.sac.policies import MultiInputPolicy as SACMultiInputPolicy
from torch import nn

from plastic_rl.agents.distributions import uncheck_action_dist
from plastic_rl.agents.train_mode import CachedTrainMode
from plastic_rl.layers import architecture, architecture_mismatch, iter_blocks
from plastic_rl.norm import insert_norm

# mypy sees each mixin below as a subclass of the SB3 classes it is mixed into, so that their attributes
# and super() calls type-check; at run time the mixins extend only each other (the bases are unchanged).
if TYPE_CHECKING:
    from stable_baselines3.common.policies import BaseModel, BasePolicy
    from stable_baselines3.common.type_aliases import Schedule

    _ModelBase = BaseModel

    class _PolicyBase(BasePolicy):
        def _build(self, lr_schedule: Schedule) -> None: ...  # every SB3 policy has one; BasePolicy does not
else:
    _ModelBase = object

FUSED_DEFAULT = (torch.optim.Adam, torch.optim.AdamW)  # fused on CPU and CUDA in torch >= 2.4
FOREACH_DEFAULT = (torch.optim.RMSprop,)  # A2C's: no fused kernel on CPU; foreach, the same values (tests/test_fast_paths.py)
_IMPLEMENTATION_KEYS = ("fused", "foreach", "differentiable")


def with_fused_default(optimizer_class: type, optimizer_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``optimizer_kwargs`` plus ``fused=True`` for Adam/AdamW (``foreach=True`` for RMSprop), unless the caller chose an
    implementation."""
    if any(key in optimizer_kwargs for key in _IMPLEMENTATION_KEYS):
        return optimizer_kwargs
    if optimizer_class in FUSED_DEFAULT:
        return {**optimizer_kwargs, "fused": True}
    if optimizer_class in FOREACH_DEFAULT:
        return {**optimizer_kwargs, "foreach": True}
    return optimizer_kwargs


def normalize_hidden(module: nn.Module, kind: str | None, affine: bool, exclude: tuple[str, ...] = ()) -> bool:
    """Normalize every Linear/Conv of ``module`` that feeds an activation; False if there is none.

    A network with no hidden nonlinearity (``net_arch=[]``: one linear map) has nothing that a
    normalization would make scale-invariant, so it is left as SB3 built it.
    """
    if kind is None:
        return False
    if not any(b.activation is not None or b.norm is not None for b in iter_blocks(module)):
        return False
    insert_norm(module, kind=kind, affine=affine, exclude=exclude)
    return True


def norm_parameters(norm: str | None, affine: bool) -> dict[str, Any]:
    """The constructor keywords that rebuild a normalization; none without one, so that SB3's own
    class can load what ``plasticity="none"`` saved (it is SB3's network)."""
    return {} if norm is None else {"norm": norm, "norm_affine": affine}


class ArchitectureChecked(CachedTrainMode, _ModelBase):
    """Mixin for SB3 ``BaseModel``s: ``save`` stores the architecture, ``load`` fails loudly on a mismatch.

    Normalized, it also sets its training mode from a remembered module list (``train_mode``): SB3's off-policy
    ``predict`` sets it at every env step, and the normalizations add modules to walk."""

    def save(self, path: str) -> None:
        torch.save(
            {"state_dict": self.state_dict(), "data": self._get_constructor_parameters(), "architecture": architecture(self)},
            path,
        )

    @classmethod
    def load(cls, path: str, device: torch.device | str = "auto"):
        # SB3's BaseModel.load, plus the check between building the model and loading its weights
        # (a wrapper around super().load could only check after reading the file a second time).
        device = get_device(device)
        saved = torch.load(path, map_location=device, weights_only=False)
        model = cls(**saved["data"])
        if "architecture" in saved:  # files written by SB3's own classes have none: nothing to compare
            mismatch = architecture_mismatch(saved["architecture"], architecture(model))
            if mismatch:
                raise ValueError(f"{cls.__name__}.load({str(path)!r}): the saved network does not match the rebuilt one: {mismatch}")
        model.load_state_dict(saved["state_dict"])
        model.to(device)
        return model


if TYPE_CHECKING:

    class _NormalizedPolicyBase(ArchitectureChecked, _PolicyBase): ...
else:
    _NormalizedPolicyBase = ArchitectureChecked


class NormalizedPolicy(_NormalizedPolicyBase):
    """Mixin for SB3 policies: the ``norm`` keyword, saved with the policy's constructor parameters."""

    norm: str | None
    norm_affine: bool
    # SB3 methods a mixin replaces without calling them: a user's override of one would never run.
    replaces: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, norm: str | None = None, norm_affine: bool = False, **kwargs: Any):
        self.norm = norm  # set before SB3's __init__, which builds the networks
        self.norm_affine = norm_affine
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), **norm_parameters(self.norm, self.norm_affine)}

    def _build(self, *args: Any, **kwargs: Any) -> None:
        # Every SB3 policy builds its optimizers in _build from self.optimizer_kwargs (set by its __init__).
        if self.norm is not None:
            self.optimizer_kwargs = with_fused_default(self.optimizer_class, self.optimizer_kwargs)
            uncheck_action_dist(self)  # PPO/A2C's: SB3's __init__ builds it before _build
        super()._build(*args, **kwargs)

    @property
    def _norm_kwargs(self) -> dict[str, Any]:
        return {"norm": self.norm, "norm_affine": self.norm_affine}


class NormalizedNetwork(ArchitectureChecked):
    """Mixin for SB3 sub-networks (``QNetwork``, ``Actor``, ``ContinuousCritic``): they normalize themselves.

    Built inside the constructor, so ``type(model.q_net).load(path)`` (SB3: ``cls(**data)``) rebuilds
    the normalization from the saved ``norm`` keyword. ``norm_exclude``: layers never normalized.
    """

    norm_exclude: tuple[str, ...] = ()

    def __init__(self, *args: Any, norm: str | None = None, norm_affine: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.norm_affine = norm_affine
        normalize_hidden(self, norm, norm_affine, exclude=self.norm_exclude)
        if norm is not None:
            uncheck_action_dist(self)  # SAC's actor

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), **norm_parameters(self.norm, self.norm_affine)}


# -- PPO: one policy, normalized where SB3 builds its MLP branches -----------------------------------
if TYPE_CHECKING:

    class _ActorCriticNormBase(NormalizedPolicy, ActorCriticPolicy): ...
else:
    _ActorCriticNormBase = NormalizedPolicy


class _ActorCriticNorm(_ActorCriticNormBase):
    def _build_mlp_extractor(self) -> None:
        super()._build_mlp_extractor()
        extractors = (
            [self.features_extractor] if self.share_features_extractor else [self.pi_features_extractor, self.vf_features_extractor]
        )
        for module in (*extractors, self.mlp_extractor):
            normalize_hidden(module, self.norm, self.norm_affine)


class PlasticActorCriticPolicy(_ActorCriticNorm, ActorCriticPolicy):
    pass


class PlasticActorCriticCnnPolicy(_ActorCriticNorm, ActorCriticCnnPolicy):
    pass


class PlasticMultiInputActorCriticPolicy(_ActorCriticNorm, MultiInputActorCriticPolicy):
    pass


# -- DQN: the Q-networks ---------------------------------------------------------------------------
class PlasticQNetwork(NormalizedNetwork, QNetwork):
    pass


class _QNetworkNorm(NormalizedPolicy):
    net_args: dict[str, Any]  # set by DQNPolicy.__init__
    replaces = ("make_q_net",)

    def make_q_net(self) -> PlasticQNetwork:
        # SB3's DQNPolicy.make_q_net with our class: called for the online and the target network alike
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return PlasticQNetwork(**net_args, **self._norm_kwargs).to(self.device)


class PlasticDQNPolicy(_QNetworkNorm, DQNPolicy):
    pass


class PlasticDQNCnnPolicy(_QNetworkNorm, DQNCnnPolicy):
    pass


class PlasticDQNMultiInputPolicy(_QNetworkNorm, DQNMultiInputPolicy):
    pass


# -- SAC: the actor and the critics ----------------------------------------------------------------
class PlasticActor(NormalizedNetwork, Actor):
    # With use_sde, SB3's mu is Sequential(Linear, Hardtanh): an output head, whatever follows it.
    norm_exclude = ("mu", "mu.*")


class PlasticContinuousCritic(NormalizedNetwork, ContinuousCritic):
    """SB3's ContinuousCritic, which also remembers how it was built: SB3's own saves only the spaces,
    so ``ContinuousCritic.load`` cannot rebuild it; this one round-trips through ``save``/``load``."""

    def __init__(
        self,
        observation_space,
        action_space,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 2,
        share_features_extractor: bool = True,
        **norm_kwargs: Any,
    ):
        super().__init__(observation_space, action_space, net_arch, features_extractor, features_dim, activation_fn,
                         normalize_images, n_critics, share_features_extractor, **norm_kwargs)  # fmt: skip
        self._built_with = dict(net_arch=list(net_arch), features_extractor=features_extractor, features_dim=features_dim,
                                activation_fn=activation_fn, n_critics=n_critics, share_features_extractor=share_features_extractor)  # fmt: skip

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), **self._built_with}


class _ActorCriticContinuousNorm(NormalizedPolicy):
    actor_kwargs: dict[str, Any]  # set by SACPolicy.__init__
    critic_kwargs: dict[str, Any]
    replaces = ("make_actor", "make_critic")

    # SB3's SACPolicy.make_actor / make_critic with our classes (the critic target too)
    def make_actor(self, features_extractor=None) -> PlasticActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return PlasticActor(**actor_kwargs, **self._norm_kwargs).to(self.device)

    def make_critic(self, features_extractor=None) -> PlasticContinuousCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return PlasticContinuousCritic(**critic_kwargs, **self._norm_kwargs).to(self.device)


class PlasticSACPolicy(_ActorCriticContinuousNorm, SACPolicy):
    pass


class PlasticSACCnnPolicy(_ActorCriticContinuousNorm, SACCnnPolicy):
    pass


class PlasticSACMultiInputPolicy(_ActorCriticContinuousNorm, SACMultiInputPolicy):
    pass


# -- a user's own subclass of an SB3 policy ------------------------------------------------------------
_NORMALIZED: dict[tuple[type, type], type] = {}  # (mixin, user's class) -> their combination, built once


def _sb3_name(cls: Any) -> str:
    mro = cls.__mro__ if isinstance(cls, type) else ()
    return next((c.__name__ for c in mro if c.__module__.startswith("stable_baselines3.")), "no SB3 policy")


def normalized_policy(user: Any, plastic_policies: Iterable[type], norm: str, agent: str) -> type:
    """The normalized variant of a user's subclass of an SB3 policy: the normalizing mixin of the agent's
    matching policy over the user's class, so that the user's overrides still run.

    :param plastic_policies: the agent's own policies (``policy_aliases``), each ``(mixin, SB3 class)``.
    :raises ValueError: one line, when the class extends none of the SB3 classes those policies extend,
        or overrides a method that the mixin replaces to build the normalized networks.
    """
    pairs = [cls.__bases__[:2] for cls in plastic_policies]
    match = next(((mixin, sb3) for mixin, sb3 in pairs if isinstance(user, type) and issubclass(user, sb3)), None)
    head = f"plasticity norm={norm!r} cannot normalize the networks of {user!r}"
    if match is None:
        wanted = [sb3 for _, sb3 in pairs if not any(sb3 is not other and issubclass(sb3, other) for _, other in pairs)]
        names = " or ".join(dict.fromkeys(c.__name__ for c in wanted))
        raise ValueError(f"{head}: it extends {_sb3_name(user)}, not {names} ({agent}'s policies) nor a plastic_rl policy")
    mixin, sb3 = match
    own = [name for name in getattr(mixin, "replaces", ()) if getattr(user, name) is not getattr(sb3, name)]
    if own:
        raise ValueError(f"{head}: it overrides {', '.join(own)}, which plastic_rl replaces to build them normalized "
                         "(plasticity='none' takes it as it is)")  # fmt: skip
    key = (mixin, user)
    if key not in _NORMALIZED:
        namespace = {"__module__": user.__module__, "__qualname__": f"Normalized{user.__qualname__}", "user_policy_class": user}
        _NORMALIZED[key] = type(f"Normalized{user.__name__}", (mixin, user), namespace)
    return _NORMALIZED[key]
