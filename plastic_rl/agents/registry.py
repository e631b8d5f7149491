"""The algorithm registry: one record per algorithm, read by the agents, checkpoints/diagnose, train and tests.

A record says where the class lives, its policies, its networks (which are trained, which is the
primary one, which are target copies, how diagnostics run each) and how a vanilla zip of it is told
apart from its relatives. Adding an agent is one module plus one ``plastic(...)`` line below:

1. ``agents/<algo>.py``: ``class PlasticX(PlasticMixin, X)`` with ``policy_aliases`` from its record
   (and its normalized policies there, when no existing ones fit: see ``agents/td3.py``);
2. a ``plastic("PlasticX", "plastic_rl.agents.<algo>", "X", {alias: "module:Class"})`` record here,
   on the ``vanilla`` record of ``X`` (add that too if SB3's ``X`` is new here);
3. ``configs/agent/<algo>.yaml`` and rl-zoo3's values in ``configs/hparams/<algo>_<Env>.yaml``;
4. an ``AgentCase`` in ``tests/helpers.py`` (and X's policy classes in ``tests/test_agent_dropin.py``'s
   tables): every shared agent test then runs on it. CONTRIBUTING.md has the details.

Nothing here imports SB3, sb3-contrib or torch (classes are named, not imported), so ``diagnose`` identifies a
checkpoint before loading anything heavy, and sb3-contrib's algorithms stay optional.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from plastic_rl.agents import forwards as f

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

Forward = Callable[[Any, Any], Any]
CLASS_KEY = "plastic_algorithm"  # the saved data key where our agents record their class name
ANY = ...  # a hyperparameter that only has to be present


@dataclass(frozen=True)
class NetworkSpec:
    """One network of an algorithm, by its attribute path from the policy (``""``: the policy itself)."""

    name: str
    path: str
    forward: Forward
    optimizer: str | None = None  # path from the policy to the optimizer that trains it; None: a target copy
    target_of: str | None = None  # the network this target lags (interventions edit both the same way)
    primary: bool = False  # its loss drives the CUSUM re-warm

    def module(self, policy: Any) -> Any:
        return attribute(policy, self.path)


@dataclass(frozen=True)
class Algo:
    """One algorithm: a vanilla SB3/sb3-contrib one, or (``base`` set) our plastic subclass of one."""

    name: str
    module: str
    networks: tuple[NetworkSpec, ...]
    on_policy: bool
    actions: Callable[[Any, Any], Any] | None = None  # critics read actions: the reference actor's, from (policy, obs)
    structure: frozenset[str] = frozenset()  # top-level parameter names of its policy (custom policy classes)
    hparams: dict[str, Any] = field(default_factory=dict)  # saved data that tells it from relatives (ANY: present)
    policy_module: str | None = None  # vanilla: the module of its own policy classes
    base: str | None = None  # plastic: the record of the SB3 algorithm it extends
    policies: dict[str, str] = field(default_factory=dict)  # plastic: alias -> "module:Class"

    @property
    def off_policy(self) -> bool:
        return not self.on_policy

    @property
    def needs_actions(self) -> bool:
        return self.actions is not None

    @property
    def plastic(self) -> bool:
        return self.base is not None

    def load_class(self) -> type[BaseAlgorithm]:
        """The algorithm class (imports its module: SB3, sb3-contrib or our agent).

        :raises ImportError: one line naming the package to install, when the library it needs is missing
            (sb3-contrib is optional: ``PlasticQRDQN`` and ``PlasticTQC`` need it, the rest do not).
        """
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as exc:
            if exc.name not in PACKAGES:
                raise
            raise ImportError(f"{self.name} needs {PACKAGES[exc.name]}: pip install {PACKAGES[exc.name]}") from exc
        return getattr(module, self.name)

    def installed(self) -> bool:
        """Whether the library its class needs is installed (looked up, not imported: sb3-contrib is optional)."""
        base = ALGOS[self.base] if self.base else self
        return importlib.util.find_spec(base.module.partition(".")[0]) is not None

    def policy_aliases(self) -> dict[str, type]:
        """alias -> policy class, for an agent's ``policy_aliases``."""
        return {alias: _import(target) for alias, target in self.policies.items()}

    def trained(self) -> list[NetworkSpec]:
        """The networks an optimizer trains, primary first (the order the plasticity controller keeps)."""
        nets = [n for n in self.networks if n.optimizer is not None]
        return sorted(nets, key=lambda n: not n.primary)

    def targets_of(self, name: str) -> list[NetworkSpec]:
        return [n for n in self.networks if n.target_of == name]


def attribute(obj: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        obj = getattr(obj, part)
    return obj


def _import(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


# -- network layouts -------------------------------------------------------------------------------
def _q(name: str) -> tuple[NetworkSpec, ...]:
    return (NetworkSpec(name, name, f.obs_forward, "optimizer", primary=True),
            NetworkSpec(f"{name}_target", f"{name}_target", f.obs_forward, target_of=name))  # fmt: skip


ACTOR_CRITIC = (NetworkSpec("policy", "", f.actor_critic_forward, "optimizer", primary=True),)
ACTOR_CRITIC_TOPS = frozenset({"action_net", "value_net"})
SAC_NETS = (
    NetworkSpec("actor", "actor", f.actor_forward, "actor.optimizer"),
    NetworkSpec("critic", "critic", f.critic_forward, "critic.optimizer", primary=True),
    NetworkSpec("critic_target", "critic_target", f.critic_forward, target_of="critic"),
)
TD3_NETS = (
    NetworkSpec("actor", "actor", f.deterministic_actor_forward, "actor.optimizer"),
    NetworkSpec("actor_target", "actor_target", f.deterministic_actor_forward, target_of="actor"),
    NetworkSpec("critic", "critic", f.critic_forward, "critic.optimizer", primary=True),
    NetworkSpec("critic_target", "critic_target", f.critic_forward, target_of="critic"),
)


def vanilla(name: str, module: str, networks: tuple[NetworkSpec, ...], on_policy: bool, policy_module: str | None,
            structure: Iterable[str] = (), **kwargs: Any) -> Algo:  # fmt: skip
    tops = frozenset(structure) or frozenset(n.path.split(".")[0] for n in networks if n.path)
    return Algo(name, module, networks, on_policy, structure=tops, policy_module=policy_module, **kwargs)


def plastic(name: str, module: str, base: str, policies: dict[str, str]) -> Algo:
    """Our subclass of ``base``: its networks and identification rules, its own class and policies."""
    return replace(ALGOS[base], name=name, module=module, base=base, policies=policies, policy_module=None)


SB3, CONTRIB = "stable_baselines3", "sb3_contrib"
PACKAGES = {SB3: "stable-baselines3", CONTRIB: "sb3-contrib"}  # module -> what pip installs it as
ALGOS: dict[str, Algo] = {}
for _algo in (
    vanilla("PPO", SB3, ACTOR_CRITIC, True, f"{SB3}.common.policies", ACTOR_CRITIC_TOPS, hparams={"clip_range": ANY}),
    vanilla("A2C", SB3, ACTOR_CRITIC, True, f"{SB3}.common.policies", ACTOR_CRITIC_TOPS),
    vanilla("DQN", SB3, _q("q_net"), False, f"{SB3}.dqn.policies"),
    vanilla("SAC", SB3, SAC_NETS, False, f"{SB3}.sac.policies", actions=f.stochastic_actions),
    vanilla("TD3", SB3, TD3_NETS, False, f"{SB3}.td3.policies", actions=f.deterministic_actions),
    # DDPG is TD3 with one actor update per critic update and target policy noise clipped to 0.
    vanilla(
        "DDPG",
        SB3,
        TD3_NETS,
        False,
        f"{SB3}.td3.policies",
        actions=f.deterministic_actions,
        hparams={"policy_delay": 1, "target_noise_clip": 0.0},
    ),  # fmt: skip
    vanilla("TRPO", CONTRIB, ACTOR_CRITIC, True, f"{SB3}.common.policies", ACTOR_CRITIC_TOPS, hparams={"cg_max_steps": ANY}),
    vanilla("MaskablePPO", CONTRIB, ACTOR_CRITIC, True, f"{CONTRIB}.common.maskable.policies", ACTOR_CRITIC_TOPS),
    vanilla("QRDQN", CONTRIB, _q("quantile_net"), False, f"{CONTRIB}.qrdqn.policies"),
    vanilla(
        "TQC",
        CONTRIB,
        SAC_NETS,
        False,
        f"{CONTRIB}.tqc.policies",
        actions=f.stochastic_actions,
        hparams={"top_quantiles_to_drop_per_net": ANY},
    ),  # fmt: skip
    vanilla("CrossQ", CONTRIB, SAC_NETS[:2], False, f"{CONTRIB}.crossq.policies", actions=f.stochastic_actions),
    vanilla("ARS", CONTRIB, (NetworkSpec("policy", "", f.obs_forward),), True, f"{CONTRIB}.ars.policies", ("action_net",)),
):
    ALGOS[_algo.name] = _algo

_P = "plastic_rl.agents.policies"
ACTOR_CRITIC_POLICIES = {"MlpPolicy": f"{_P}:PlasticActorCriticPolicy", "CnnPolicy": f"{_P}:PlasticActorCriticCnnPolicy",
                         "MultiInputPolicy": f"{_P}:PlasticMultiInputActorCriticPolicy"}  # fmt: skip
for _algo in (
    plastic("PlasticPPO", "plastic_rl.agents.ppo", "PPO", ACTOR_CRITIC_POLICIES),
    plastic("PlasticA2C", "plastic_rl.agents.a2c", "A2C", ACTOR_CRITIC_POLICIES),
    plastic("PlasticDQN", "plastic_rl.agents.dqn", "DQN", {"MlpPolicy": f"{_P}:PlasticDQNPolicy",
            "CnnPolicy": f"{_P}:PlasticDQNCnnPolicy", "MultiInputPolicy": f"{_P}:PlasticDQNMultiInputPolicy"}),
    plastic("PlasticSAC", "plastic_rl.agents.sac", "SAC", {"MlpPolicy": f"{_P}:PlasticSACPolicy",
            "CnnPolicy": f"{_P}:PlasticSACCnnPolicy", "MultiInputPolicy": f"{_P}:PlasticSACMultiInputPolicy"}),
    plastic("PlasticTD3", "plastic_rl.agents.td3", "TD3", {"MlpPolicy": "plastic_rl.agents.td3:PlasticTD3Policy",
            "CnnPolicy": "plastic_rl.agents.td3:PlasticTD3CnnPolicy", "MultiInputPolicy": "plastic_rl.agents.td3:PlasticTD3MultiInputPolicy"}),
    # sb3-contrib's (optional): named here, imported on first use (their modules import sb3_contrib)
    plastic("PlasticQRDQN", "plastic_rl.agents.qrdqn", "QRDQN", {"MlpPolicy": "plastic_rl.agents.qrdqn:PlasticQRDQNPolicy",
            "CnnPolicy": "plastic_rl.agents.qrdqn:PlasticQRDQNCnnPolicy", "MultiInputPolicy": "plastic_rl.agents.qrdqn:PlasticQRDQNMultiInputPolicy"}),
    plastic("PlasticTQC", "plastic_rl.agents.tqc", "TQC", {"MlpPolicy": "plastic_rl.agents.tqc:PlasticTQCPolicy",
            "CnnPolicy": "plastic_rl.agents.tqc:PlasticTQCCnnPolicy", "MultiInputPolicy": "plastic_rl.agents.tqc:PlasticTQCMultiInputPolicy"}),
):  # fmt: skip
    ALGOS[_algo.name] = _algo

PLASTIC = tuple(name for name, algo in ALGOS.items() if algo.plastic)
SUPPORTED = ", ".join(ALGOS)


# -- identifying a saved zip -------------------------------------------------------------------------
def _matches(algo: Algo, data: dict) -> bool:
    return all(key in data and (want is ANY or data[key] == want) for key, want in algo.hparams.items())


def _most_specific(candidates: Iterable[Algo], data: dict) -> Algo | None:
    fitting = [a for a in candidates if _matches(a, data)]
    return max(fitting, key=lambda a: (len(a.structure), len(a.hparams)), default=None)


def identify(data: dict, policy_module: str, policy_name: str, parameter_names: Callable[[], set[str]]) -> Algo | None:
    """The record of a checkpoint from its saved ``data``; None if no record fits.

    Our agents record their class (``CLASS_KEY``). A zip without one (vanilla SB3, or ours from before
    the class was recorded) is identified by its policy class's module (and, for ours, the class), else
    by the top-level names of its parameters (a custom policy class); among relatives that share both,
    by the hyperparameters each saves (PPO's ``clip_range``, TRPO's ``cg_max_steps``, DDPG's settings).
    ``parameter_names`` is only called when the policy class says nothing.
    """
    recorded = data.get(CLASS_KEY)
    if isinstance(recorded, str):
        return ALGOS.get(recorded)
    target = f"{policy_module}:{policy_name}"
    ours = [a for a in ALGOS.values() if target in a.policies.values()]
    if ours:
        return _most_specific(ours, data)
    by_module = [a for a in ALGOS.values() if a.policy_module == policy_module]
    if by_module:
        return _most_specific(by_module, data)
    tops = {name.split(".", 1)[0] for name in parameter_names()}
    return _most_specific((a for a in ALGOS.values() if not a.plastic and a.structure <= tops), data)


def get(name: str) -> Algo:
    """The record named ``name``; a one-line error naming the accepted ones otherwise."""
    try:
        return ALGOS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; accepted: {SUPPORTED}") from None
