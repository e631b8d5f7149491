"""``RewarmOnSwitch``: an SB3 callback that re-warms a plastic_rl agent when a ``TaskSequence`` switches task."""

from __future__ import annotations

import warnings

from stable_baselines3.common.callbacks import BaseCallback


class RewarmOnSwitch(BaseCallback):
    """Calls ``model.plasticity.rewarm()`` on every step whose infos carry ``"task_switch"``.

    :param enabled: True/False re-warm or not; None (default) follows the training env's
        ``rewarm_on_switch`` attribute (``TaskSequence(..., rewarm_on_switch=...)``; True if absent).

    Either way each switch is logged (``env/task_index``) and noted in ``self.switches``
    (``model.num_timesteps`` at the switch); ``self.rewarms`` lists the ones re-warmed at. An agent
    without ``model.plasticity`` (plain SB3) is refused at the start of training; an agent whose
    plasticity has no re-warm schedule (presets ``none``, ``nap``) gets a warning and is left alone,
    so a sweep over presets runs with the same callback.
    """

    def __init__(self, enabled: bool | None = None, verbose: int = 0):
        super().__init__(verbose)
        self.enabled = enabled
        self.switches: list[int] = []
        self.rewarms: list[int] = []
        self._active = False

    def _init_callback(self) -> None:
        plasticity = getattr(self.model, "plasticity", None)
        if plasticity is None:
            raise TypeError(f"RewarmOnSwitch needs a plastic_rl agent (model.plasticity); {type(self.model).__name__} has none")
        enabled = self.enabled
        if enabled is None:
            enabled = bool(getattr(self.training_env.unwrapped, "rewarm_on_switch", True))
        config = getattr(plasticity, "config", None)
        if enabled and config is not None and getattr(config, "schedule", True) is None:
            warnings.warn("RewarmOnSwitch: this agent's plasticity has no re-warm schedule; task switches are logged only", stacklevel=2)
            enabled = False
        self._active = enabled

    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or ()
        switch = next((info["task_switch"] for info in infos if "task_switch" in info), None)
        if switch is not None:
            self.switches.append(self.num_timesteps)
            self.logger.record("env/task_index", switch)
            if self._active:
                self.model.plasticity.rewarm()
                self.rewarms.append(self.num_timesteps)
            if self.verbose:
                print(f"task switch -> {switch} at step {self.num_timesteps}" + (" (re-warmed)" if self._active else ""))
        return True
