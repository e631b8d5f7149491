"""``OnTaskSwitch``: an SB3 callback that re-warms and/or intervenes when a ``TaskSequence`` switches task."""

from __future__ import annotations

import warnings

from stable_baselines3.common.callbacks import BaseCallback


class OnTaskSwitch(BaseCallback):
    """At every step whose infos carry ``"task_switch"``: ``model.plasticity.rewarm()`` and/or ``.intervene()``.

    :param rewarm: True/False re-warm or not; None (default) follows the training env's
        ``rewarm_on_switch`` attribute (``TaskSequence(..., rewarm_on_switch=...)``; True if absent).
    :param intervene: run the agent's configured intervention (``plasticity={"intervention": "redo",
        "every": 0}``: ReDo, Shrink & Perturb or a reset) at every switch.

    Either way each switch is logged (``env/task_index``) and noted in ``self.switches``
    (``model.num_timesteps`` at the switch); ``self.rewarms`` and ``self.interventions`` list the ones
    acted on. An agent without ``model.plasticity`` (plain SB3) is refused at the start of training; an
    agent whose plasticity has no re-warm schedule (presets ``none``, ``nap``) or no intervention gets a
    warning and that part is left out, so a sweep over presets runs with the same callback. The
    intervention runs between rollouts, never inside ``train()``.
    """

    def __init__(self, rewarm: bool | None = None, intervene: bool = False, verbose: int = 0):
        super().__init__(verbose)
        self.rewarm = rewarm
        self.intervene = intervene
        self.switches: list[int] = []
        self.rewarms: list[int] = []
        self.interventions: list[int] = []
        self._rewarming = self._intervening = False

    def _init_callback(self) -> None:
        plasticity = getattr(self.model, "plasticity", None)
        name = type(self).__name__
        if plasticity is None:
            raise TypeError(f"{name} needs a plastic_rl agent (model.plasticity); {type(self.model).__name__} has none")
        rewarm = self.rewarm
        if rewarm is None:
            rewarm = bool(getattr(self.training_env.unwrapped, "rewarm_on_switch", True))
        config = plasticity.config
        if rewarm and config.schedule is None:
            warnings.warn(f"{name}: this agent's plasticity has no re-warm schedule; it is not re-warmed at task switches", stacklevel=2)
            rewarm = False
        intervene = self.intervene
        if intervene and config.intervention is None:
            warnings.warn(f"{name}: this agent's plasticity has no intervention; none runs at task switches", stacklevel=2)
            intervene = False
        self._rewarming, self._intervening = rewarm, intervene

    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or ()
        switch = next((info["task_switch"] for info in infos if "task_switch" in info), None)
        if switch is None:
            return True
        self.switches.append(self.num_timesteps)
        self.logger.record("env/task_index", switch)
        done = []
        if self._rewarming:
            self.model.plasticity.rewarm()
            self.rewarms.append(self.num_timesteps)
            done.append("re-warmed")
        if self._intervening:
            self.model.plasticity.intervene()
            self.interventions.append(self.num_timesteps)
            done.append(self.model.plasticity.config.intervention)
        if self.verbose:
            print(f"task switch -> {switch} at step {self.num_timesteps}" + (f" ({', '.join(done)})" if done else ""))
        return True


class RewarmOnSwitch(OnTaskSwitch):
    """``OnTaskSwitch`` that only re-warms (``enabled``: the same as ``OnTaskSwitch``'s ``rewarm``)."""

    def __init__(self, enabled: bool | None = None, verbose: int = 0):
        super().__init__(rewarm=enabled, intervene=False, verbose=verbose)
