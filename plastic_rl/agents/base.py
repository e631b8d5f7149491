"""What every plastic agent adds to its SB3 parent (sb3-contrib style: the algorithm stays SB3's).

- the env-first call form ``PlasticPPO("CartPole-v1")`` next to SB3's ``PlasticPPO("MlpPolicy", env)``;
- ``plasticity=`` (preset, dataclass or dict) -> the policy's ``norm`` keyword and a
  ``PlasticityController`` (``model.plasticity``) built after SB3 builds the networks;
- logging through SB3's logger after every ``train()``: ``plasticity/lr_factor``, and, measured on the first
  optimizer step after each write of the logger (what the next write shows), ``plasticity/elr/<layer>`` and
  ``plasticity/param_norm/<layer>``; every ``diagnostics_freq`` gradient steps the diagnostics of a batch of
  recent observations (no random sampling: the agent's RNG streams stay SB3's);
- the plasticity state in SB3's own zip (its ``data`` part), so ``load`` continues exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import VecEnv

from plastic_rl.agents import loss_tap, registry
from plastic_rl.agents.config import DEFAULT_PRESET, PlasticityConfig, resolve_plasticity
from plastic_rl.agents.controller import Network, PlasticityController
from plastic_rl.agents.inputs import as_tensor, diagnostic_inputs, recent_rows  # noqa: F401 -- re-exported
from plastic_rl.agents.policies import NormalizedPolicy, normalized_policy
from plastic_rl.env_ids import backend_of
from plastic_rl.layers import architecture, architecture_mismatch

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

    class _AlgorithmBase(BaseAlgorithm):
        """What PlasticMixin is mixed into, for mypy only: an SB3 algorithm (PPO, A2C, DQN, SAC, TD3), whose
        concrete classes implement BaseAlgorithm's abstract methods and add ``train`` (and the on-policy
        ones ``_maybe_recommend_cpu``, which only they call)."""

        def _setup_model(self) -> None: ...
        def learn(self, *args: Any, **kwargs: Any) -> Any: ...
        def train(self, *args: Any, **kwargs: Any) -> None: ...
        def _maybe_recommend_cpu(self, mlp_class_name: str = "ActorCriticPolicy") -> None: ...
else:
    _AlgorithmBase = object  # at run time PlasticMixin extends object, as SB3's algorithm follows it in the MRO


def policy_for(observation_space: gym.Space) -> str:
    """The SB3 policy alias an observation space calls for: MultiInput (dict), Cnn (image), else Mlp."""
    if isinstance(observation_space, gym.spaces.Dict):
        return "MultiInputPolicy"
    if is_image_space(observation_space, check_channels=False):
        return "CnnPolicy"
    return "MlpPolicy"


def is_normalized(policy_class: Any) -> bool:
    """Whether a policy class is plastic_rl's (it takes the ``norm`` keyword)."""
    return isinstance(policy_class, type) and issubclass(policy_class, NormalizedPolicy)


def uncompiled(module: Any) -> Any:
    """The module that ``torch.compile`` wrapped (SB3 saves and loads its parameters: GH#2137), else the module."""
    return getattr(module, "_orig_mod", module)


COMPILED_ROOT = ".: OptimizedModule()"


def uncompiled_architecture(saved: list[str]) -> list[str]:
    """A saved ``architecture()`` as the uncompiled module's: zips saved before compiled policies were unwrapped
    recorded the wrapper (``.: OptimizedModule()``, then every module under ``_orig_mod``)."""
    if not saved or saved[0] != COMPILED_ROOT:
        return saved
    root = "_orig_mod"
    return [("." + line[len(root) :]) if line.startswith(root + ":") else line[len(root) + 1 :] for line in saved[1:]]


def split_call_form(algorithm: type, policy: Any, env: Any) -> tuple[Any, Any]:
    """Accept ``Algo(env)`` as well as SB3's ``Algo(policy, env)``; return (policy, env)."""
    aliases = getattr(algorithm, "policy_aliases", {})
    if isinstance(policy, type) or (isinstance(policy, str) and policy in aliases):
        return policy, env
    if not isinstance(policy, (str, gym.Env, VecEnv)):
        raise TypeError(
            f"{algorithm.__name__}'s first argument must be a policy ({', '.join(aliases)}, or a policy class) "
            f"or an environment (an id or a gymnasium/VecEnv object), got {type(policy).__name__}"
        )
    if isinstance(policy, str):
        try:
            spec = gym.spec(policy)
        except gym.error.Error as exc:
            raise ValueError(f"{policy!r} is neither a policy ({', '.join(aliases)}) nor a registered environment id: {exc}") from None
        if env is None:
            policy = gym.make(spec)
    if env is not None:
        raise TypeError(f"{algorithm.__name__} got an environment twice: as the first argument and as env=")
    return policy_for(policy.observation_space), policy


def env_id_of(env: Any) -> str | None:
    """The gymnasium id behind an env (an id, a gym.Env or a VecEnv of them), or None if it has none."""
    if env is None or isinstance(env, str):
        return env
    if isinstance(getattr(env, "env_id", None), str):  # plastic_rl.envs' envpool adapter and task sequences
        return env.env_id
    if isinstance(env, VecEnv):
        try:
            spec = env.get_attr("spec", indices=[0])[0]
        except (AttributeError, IndexError):
            return None
    else:
        spec = getattr(env, "spec", None)
    return getattr(spec, "id", None)


HUMAN_FORMATS = ("stdout", "log")  # SB3's formats for people (logger.HumanOutputFormat)
# Whole-network values also printed at verbose >= 1; every other series goes to the machine formats only.
CONSOLE_METRICS = ("lr_factor", "elr", "dormant_ratio", "dead_ratio", "saturated_ratio", "srank")


class PlasticMixin(_AlgorithmBase):
    """Mixed in before an SB3 algorithm class: ``class PlasticPPO(PlasticMixin, PPO)``."""

    plastic_policies: dict[str, type] = {}  # alias -> our policy class (replaces SB3's aliases)
    plasticity: PlasticityController

    def __init__(
        self,
        policy: Any,
        env: Any = None,
        *args: Any,
        plasticity: str | PlasticityConfig | dict | None = DEFAULT_PRESET,
        diagnostics_freq: int = 1000,
        diagnostics_batch: int = 256,
        diagnostics_tau: float = 0.025,
        **kwargs: Any,
    ):
        """Every other keyword is the SB3 algorithm's (PPO's for PlasticPPO; A2C's, DQN's, SAC's, TD3's), passed on as is.

        :param policy: a policy alias (``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"``: plastic_rl's policies) or class;
            or the environment itself (an id, a gymnasium env or a VecEnv: ``PlasticPPO("CartPole-v1")``), whose
            observation space then picks the alias. A ``plasticity`` with a ``norm`` normalizes a user's subclass of an
            SB3 policy (SB3's ``ActorCriticPolicy`` for PPO, ...) by mixing plastic_rl's normalization into it.
        :param env: SB3's ``env`` (an id, a gymnasium env or a VecEnv); None when ``policy`` is the environment.
        :param plasticity: a preset name (default ``DEFAULT_PRESET``, ``"norm-rewarm"``; ``"none"``, ``"nap"``, ``"elr"``, ``"redo"``,
            ...: ``PRESETS``), a ``PlasticityConfig``, a dict
            overriding fields of its ``"preset"`` (``resolve_plasticity``), or None (``"none"``: SB3's algorithm, still measured).
            A zip saved by SB3's own algorithm loads as ``"none"`` (its networks have no normalization).
        :param diagnostics_freq: gradient steps (SB3's ``train/n_updates``) between two diagnostics of the networks (dormant,
            dead and saturated units, srank, ...), checked after every ``train()``; 0 turns diagnostics off.
        :param diagnostics_batch: how many of the most recent observations in the rollout/replay buffer the diagnostics
            run on (at least 1; the newest, not a random sample, so the agent's RNG streams stay SB3's).
        :param diagnostics_tau: dormancy threshold in [0, 1): a unit whose mean absolute activation on the batch is at most
            ``diagnostics_tau`` times its layer's average is dormant (Sokar et al. 2023).
        """
        policy, env = split_call_form(type(self), policy, env)
        policy_class = self.policy_aliases.get(policy, policy) if isinstance(policy, str) else policy
        init_setup = kwargs.pop("_init_setup_model", True)
        if not init_setup and not is_normalized(policy_class):
            # SB3's load() of a zip that SB3's own PPO/DQN/SAC saved: its networks have no normalization, so
            # it continues as plasticity="none" (SB3's algorithm, plus ELR measurements and diagnostics).
            plasticity = "none"
        self.plasticity_config = resolve_plasticity(plasticity)
        if not (isinstance(diagnostics_freq, int) and diagnostics_freq >= 0):
            raise ValueError(f"diagnostics_freq={diagnostics_freq!r} must be an int >= 0 (0 turns diagnostics off)")
        if not (isinstance(diagnostics_batch, int) and diagnostics_batch >= 1):  # 0 rows: [-0:] would take them all
            raise ValueError(f"diagnostics_batch={diagnostics_batch!r} must be an int >= 1 (diagnostics_freq=0 turns diagnostics off)")
        if not 0 <= diagnostics_tau < 1:
            raise ValueError(f"diagnostics_tau={diagnostics_tau!r} is outside [0, 1)")
        self.diagnostics_freq = diagnostics_freq
        self.diagnostics_batch = diagnostics_batch
        self.diagnostics_tau = diagnostics_tau
        self._plasticity_state: dict | None = None
        self._policy_architecture: list[str] | None = None  # saved: load() checks the rebuilt policy against it
        self._diagnosed_at = 0
        if self.plasticity_config.norm is not None and not is_normalized(policy_class):
            # a user's subclass of an SB3 policy: the normalizing mixin over it, so that its overrides still run
            policy = normalized_policy(policy_class, self.policy_aliases.values(), self.plasticity_config.norm, type(self).__name__)
        # What SB3's algorithm writes into the policy kwargs (A2C's RMSprop), saved apart from the user's own,
        # so that load(path, policy_kwargs=<the user's>) finds them equal; _setup_model builds with both.
        self._sb3_policy_kwargs: dict[str, Any] = {}
        own = dict(kwargs.pop("policy_kwargs", None) or {})
        self.env_id: str | None = None  # saved with env_backend: diagnose re-creates the env (_record_env)
        self.env_backend: str | None = None
        kwargs.update(policy_kwargs=dict(own), _init_setup_model=False)  # SB3 writes into it; built below
        super().__init__(policy, env, *args, **kwargs)
        if init_setup:  # (SB3's load() replaces the policy kwargs with the saved ones)
            added = {k: v for k, v in self.policy_kwargs.items() if k not in own or own[k] is not v}
            self._sb3_policy_kwargs, self.policy_kwargs = added, own
        setattr(self, registry.CLASS_KEY, self.algo().name)  # saved: diagnose identifies the zip by it
        if init_setup:
            self._setup_model()

    # -- building --------------------------------------------------------------------------------
    def _setup_model(self) -> None:
        own = self.policy_kwargs  # SB3 builds the policy from self.policy_kwargs: for that, with what was added
        norm = {"norm": self.plasticity_config.norm, "norm_affine": self.plasticity_config.affine}
        self.policy_kwargs = {**self._sb3_policy_kwargs, **own, **(norm if is_normalized(self.policy_class) else {})}
        try:
            super()._setup_model()
        finally:
            self.policy_kwargs = own
        if self.env is not None:  # at construction, and in load(path, env=...) after SB3 restored the saved record
            self._record_env(self.env)
        if self._policy_architecture is not None:  # restored from a saved zip by SB3's load()
            mismatch = architecture_mismatch(uncompiled_architecture(self._policy_architecture), architecture(self.policy))
            if mismatch:
                raise ValueError(f"{type(self).__name__}.load: the saved policy does not match the rebuilt one: {mismatch}")
        self.plasticity = PlasticityController(self._plastic_networks(), self.plasticity_config, inputs=self._diagnostic_inputs)
        if self._plasticity_state is not None:  # restored from a saved zip by SB3's load()
            self.plasticity.load_state_dict(self._plasticity_state)
            self._plasticity_state = None

    def _record_env(self, env: Any) -> None:
        """Record the env id and backend the model trains on (saved in the zip), so that ``diagnose``
        re-creates that env on that backend: the env given at construction, to ``load`` or to ``set_env``."""
        self.env_id = env_id_of(env)
        self.env_backend = backend_of(env) if self.env_id is not None else None

    def set_env(self, env: Any, force_reset: bool = True) -> None:
        super().set_env(env, force_reset)
        self._record_env(self.env)

    @classmethod
    def algo(cls) -> registry.Algo:
        """This agent's registry record (a subclass of ours shares its parent's)."""
        return next(registry.ALGOS[c.__name__] for c in cls.__mro__ if c.__name__ in registry.PLASTIC)

    def _plastic_networks(self) -> list[Network]:
        """The registry's trained networks (primary first), each with its target copies as mirrors."""
        algo, policy = self.algo(), self.policy
        return [
            Network(spec.name, spec.module(policy), registry.attribute(policy, spec.optimizer or ""), spec.forward,
                    primary=spec.primary, mirrors=tuple(t.module(policy) for t in algo.targets_of(spec.name)),
                    **self._network_options(spec))
            for spec in algo.trained()
        ]  # fmt: skip

    def _network_options(self, spec: registry.NetworkSpec) -> dict[str, Any]:
        """Extra ``Network`` keywords for one network (``init``, ``exclude``): none by default."""
        return {}

    def _diagnostic_inputs(self) -> Any:
        """A fixed batch of recent observations (and actions where a network needs them), or None."""
        algo = self.algo()
        return diagnostic_inputs(self, algo.on_policy, algo.needs_actions)

    def _maybe_recommend_cpu(self, mlp_class_name: str = "ActorCriticPolicy") -> None:
        """SB3's advice to run MLP policies of on-policy agents on the CPU, which keys on the policy
        class's *name*: ask it about the SB3 class our policy extends."""
        sb3_class = next(c for c in self.policy_class.__mro__ if c.__module__.startswith("stable_baselines3."))
        sb3_class = getattr(self.policy_class, "user_policy_class", sb3_class)  # a user's class: judged as SB3 judges it
        if sb3_class.__name__ == mlp_class_name:
            mlp_class_name = self.policy_class.__name__
        super()._maybe_recommend_cpu(mlp_class_name)

    # -- training --------------------------------------------------------------------------------
    def train(self, *args: Any, **kwargs: Any) -> None:
        # Measure and record the ELR only when the logger has written the last values (a dump cleared them):
        # SB3's logger keeps the last recorded value until it writes, so a measurement taken while one is
        # pending would never be written. Off-policy agents call train() every few env steps and write
        # every few episodes; measuring each call cost them ~7% of a DQN gradient step (issue 24).
        measure = self._elr_key() not in self.logger.name_to_value
        with self.plasticity.training(measure=measure):
            super().train(*args, **kwargs)
        self.plasticity.after_train()
        self._record_plasticity(measured=measure)

    def _elr_key(self) -> str:
        """The logger key of the first network's ELR: while it is in the logger, a measurement awaits writing."""
        return "plasticity/" + self.plasticity.elr_keys()[0]

    def _record_plasticity(self, measured: bool = True) -> None:
        for key, value in self.plasticity.pop_intervention_log().items():
            self._record(key, value, console=key.count("/") == 1)  # per-layer counts: machine formats only
        self._record("lr_factor", self.plasticity.lr_factor)
        alarms = self.plasticity.alarms()
        if alarms is not None:  # cumulative: a report finds each alarm's step where the count rises
            self._record("cusum_alarms", alarms)
        if measured:
            for key, value in self.plasticity.network_elr().items():
                self._record(key, value)
            metrics = self.plasticity.metrics()
            metrics.pop("lr_factor")
            for key, value in metrics.items():
                self._record(key, value, console=False)
        if self.diagnostics_freq and self._n_updates - self._diagnosed_at >= self.diagnostics_freq:
            inputs = self._diagnostic_inputs()
            if inputs is not None:
                self._diagnosed_at = self._n_updates
                summary, layers = self.plasticity.measure_split(inputs, tau=self.diagnostics_tau)
                for key, value in summary.items():
                    self._record(key, value, console=key.partition("/")[0] in CONSOLE_METRICS)
                for key, value in layers.items():
                    self._record(key, value, console=False)

    def _record(self, key: str, value: float, console: bool = True) -> None:
        """``plasticity/<key>`` to every output format, or (``console=False``) to the machine-readable ones.

        SB3's stdout and log formats are tables for people that cut keys at 36 characters, so per-layer
        series (``plasticity/param_norm/mlp_extractor.policy_net.0``) would collide there; they go to
        TensorBoard, CSV and JSON, and the console gets the whole-network summary.
        """
        self.logger.record(f"plasticity/{key}", value, exclude=None if console else HUMAN_FORMATS)

    def learn(self, total_timesteps: int, *args: Any, **kwargs: Any):
        """SB3's ``learn``; TensorBoard runs are named after this class (``PlasticPPO_1``) by default."""
        if len(args) < 3:  # (callback, log_interval, tb_log_name, ...) positionally
            kwargs.setdefault("tb_log_name", type(self).__name__)
        with loss_tap.installed():  # once, not once per train() (loss_tap.installed)
            return super().learn(total_timesteps, *args, **kwargs)

    # -- saving ----------------------------------------------------------------------------------
    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "plasticity"]

    def save(self, *args: Any, **kwargs: Any) -> None:
        self._plasticity_state = self.plasticity.state_dict()  # goes into SB3's data with the rest
        self._policy_architecture = architecture(uncompiled(self.policy))  # as SB3 saves a compiled one's parameters
        try:
            super().save(*args, **kwargs)
        finally:
            self._plasticity_state = None
