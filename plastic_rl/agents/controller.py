"""The plasticity machinery of one agent: an ``ELR`` per optimizer, driven from SB3's own ``train()``.

SB3 computes each loss inside ``train()`` and steps its optimizers there. Rather than copy every
algorithm's ``train()`` (which would drift from SB3's), the controller hooks in from outside: an
optimizer post-step hook calls ``ELR.step`` after every optimizer step, and while ``train()`` runs,
``training()`` records the scalar on which ``.backward()`` was last called -- the loss of that very
step -- so the CUSUM re-warm and the finite-loss check see SB3's own loss (``loss_tap``: the one
place ``torch.Tensor.backward`` is replaced, with its contract).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from plastic_rl import diagnostics, interventions
from plastic_rl.agents.config import PlasticityConfig
from plastic_rl.agents.loss_tap import LossTap, tap_losses
from plastic_rl.elr import ELR, SHRINK_MODES, implicit_decay_rate, scale_invariant_layers
from plastic_rl.layers import ACTIVATIONS, WEIGHT_LAYERS, iter_blocks, matches

Forward = Callable[[nn.Module, Any], Any]


@dataclass
class Network:
    """One trained network of an agent: its module, its optimizer, how diagnostics run it."""

    name: str
    module: nn.Module
    optimizer: torch.optim.Optimizer
    forward: Forward
    primary: bool = False  # its loss drives the CUSUM re-warm (PPO: the loss, DQN: TD, SAC: critic)
    exclude: tuple[str, ...] = ()  # layers another network's optimizer trains (a shared extractor)
    mirrors: tuple[nn.Module, ...] = ()  # target networks: interventions edit them the same way
    init: interventions.Initializer = interventions.default_init  # how the agent's parent initializes it


def decay_rate(elr: ELR, optimizer: torch.optim.Optimizer) -> float:
    """``implicit_decay_rate`` of one network: its projected layers, its optimizer's class and initial lr
    (SB3 sets the lr from its schedule's start before the controller exists). A network with no
    projected layer (``net_arch=[]``) has no implicit decay: rate 0."""
    layers = elr.projected_layers()
    if not layers:
        return 0.0
    return implicit_decay_rate(float(optimizer.param_groups[0]["lr"]), layers, type(optimizer).__name__)


INTERVENTION_STATE = "_interventions"  # key of the intervention bookkeeping in state_dict()


class PlasticityController:
    """``rewarm()``, ``metrics()``, ``measure()`` and the saved state of an agent's plasticity."""

    def __init__(self, networks: list[Network], config: PlasticityConfig, inputs: Callable[[], Any] | None = None):
        self.config = config
        self._inputs = inputs  # a batch of recent observations for redo (the diagnostics batch), or None
        self.interventions = 0  # how many have run
        self._intervened_at = 0  # the primary network's optimizer step at the last one
        self._intervention_log: dict[str, float] = {}  # what the last ones reset, until logged
        self.networks = {net.name: net for net in networks}
        self.primary = next((net.name for net in networks if net.primary), networks[0].name)
        self.elrs: dict[str, ELR] = {}
        self._handles = []
        unprojected = [net.name for net in networks if config.project and not scale_invariant_layers(net.module, net.exclude)]
        if unprojected:
            warnings.warn(
                f"plasticity project=True: {', '.join(unprojected)} {'has' if len(unprojected) == 1 else 'have'} no hidden layer followed by a nonlinearity "
                "(e.g. net_arch=[]), so nothing there is scale-invariant: it is not projected; its ELR is still measured",
                UserWarning,
                stacklevel=4,
            )
        for net in networks:
            self.elrs[net.name] = ELR(
                net.module,
                net.optimizer,
                schedule=config.make_schedule(),
                project=False if net.name in unprojected else config.project,
                project_every=config.project_every,
                measure_every=config.measure_every,
                gains=config.gains,
                exclude=net.exclude,
                mirrors=net.mirrors if config.project in SHRINK_MODES else (),
            )
            if config.schedule == "decay":  # its rate needs the built network: the projected layers and the lr
                self.elrs[net.name].schedule = config.make_schedule(decay_rate=decay_rate(self.elrs[net.name], net.optimizer))
            self._handles.append(net.optimizer.register_step_post_hook(self._hook(net.name)))
        self._tap: LossTap | None = None  # open during train(): the loss of each optimizer step
        self._prefix = len(networks) > 1  # name layers "<network>.<layer>" only when it is ambiguous

    # -- driving the ELRs ------------------------------------------------------------------------
    def _hook(self, name: str):
        def after_optimizer_step(optimizer, args, kwargs) -> None:
            loss = None
            if name == self.primary and self._tap is not None and self._tap.loss is not None:
                loss = float(self._tap.loss)
            elr = self.elrs[name]
            alarms = self._alarms(elr)
            elr.step(loss=loss)
            if self._alarms(elr) > alarms:  # the loss jumped: every network re-warms together
                for other, other_elr in self.elrs.items():
                    if other != name:
                        other_elr.rewarm()

        return after_optimizer_step

    @staticmethod
    def _alarms(elr: ELR) -> int:
        return len(getattr(elr.schedule, "alarms", ()))

    @contextlib.contextmanager
    def training(self, measure: bool = True) -> Iterator[None]:
        """Around one SB3 ``train()``: measure its first optimizer step (``measure``), and take each step's loss
        from ``loss_tap.tap_losses`` (the last scalar ``.backward()`` was called on; its contract is there)."""
        if measure:
            for elr in self.elrs.values():
                elr.measure_next()
        outer = self._tap  # a nested training() of the same agent gives it back on leaving
        with tap_losses() as tap:
            self._tap = tap
            try:
                yield
            finally:
                self._tap = outer

    # -- the public face: model.plasticity -----------------------------------------------------
    def rewarm(self) -> None:
        """Re-warm every network now (e.g. at a known task switch): restart its lr warm-up, and with
        ``project="on-rewarm"``/``"from-rewarm"`` shrink its normalized layers back to their initial norms (``ELR.restore_norms``)."""
        if not self.config.can_rewarm:
            raise RuntimeError(
                "this agent's plasticity has nothing to re-warm (schedule=None, project is not 'on-rewarm' or 'from-rewarm'); "
                "use preset 'norm-rewarm', 'elr' or 'elr-cusum'"
            )
        for elr in self.elrs.values():
            elr.rewarm()

    def alarms(self) -> int | None:
        """How many times the CUSUM detector re-warmed (None without a CUSUM schedule)."""
        schedule = self.elrs[self.primary].schedule
        return len(schedule.alarms) if hasattr(schedule, "alarms") else None  # type: ignore[union-attr]

    @property
    def lr_factor(self) -> float:
        return self.elrs[self.primary].lr_factor

    def _key(self, net: str, layer: str) -> str:
        return f"{net}.{layer}" if self._prefix else layer

    def metrics(self) -> dict[str, float]:
        """Last ELR measurements: ``elr/<layer>``, ``param_norm/<layer>``, ``update_norm/<layer>``, ``lr_factor``."""
        out: dict[str, float] = {}
        for net, elr in self.elrs.items():
            for key, value in elr.metrics().items():
                if key == "lr_factor":
                    if net == self.primary:
                        out[key] = value
                    continue
                kind, layer = key.split("/", 1)
                out[f"{kind}/{self._key(net, layer)}"] = value
        return out

    def measure(self, inputs: Any, tau: float = 0.025) -> dict[str, float]:
        """``diagnostics.measure`` on every network, keys named like ``metrics()``."""
        summary, layers = self.measure_split(inputs, tau)
        return {**summary, **layers}

    def measure_split(self, inputs: Any, tau: float = 0.025) -> tuple[dict[str, float], dict[str, float]]:
        """``measure()`` as (whole-network values: ``<metric>[/<network>]``, per-layer values)."""
        summary: dict[str, float] = {}
        layers: dict[str, float] = {}
        for name, net in self.networks.items():
            if not any(isinstance(m, ACTIVATIONS) for m in net.module.modules()):
                continue  # no hidden units (net_arch=[]): nothing for unit diagnostics to look at
            for key, value in diagnostics.measure(net.module, inputs, tau=tau, forward=net.forward).items():
                kind, _, layer = key.partition("/")
                if layer:
                    layers[f"{kind}/{self._key(name, layer)}"] = value
                else:
                    summary[f"{kind}/{name}" if self._prefix else kind] = value
        return summary, layers

    def network_elr(self) -> dict[str, float]:
        """The ELR of each network as a whole: ||u_t|| / ||W_{t-1}|| over all its measured layers jointly.

        ``elr`` (``elr/<network>`` for agents with several networks): one readable number per network
        for the console; the per-layer values are in ``metrics()``.
        """
        out: dict[str, float] = {}
        for key, elr in zip(self.elr_keys(), self.elrs.values()):
            values = elr.metrics()
            updates = sum(v * v for k, v in values.items() if k.startswith("update_norm/"))
            params = sum(v * v for k, v in values.items() if k.startswith("param_norm/"))
            out[key] = math.sqrt(updates / params) if params > 0 else math.inf
        return out

    def elr_keys(self) -> list[str]:
        """The keys of ``network_elr()``, in its order, without measuring anything."""
        return [f"elr/{net}" if self._prefix else "elr" for net in self.elrs]

    # -- interventions -------------------------------------------------------------------------
    def after_train(self) -> None:
        """After SB3's ``train()``: run the intervention if the primary network passed a multiple of ``every``.

        Not inside ``train()``: a network edited in place between its forward and its backward breaks
        autograd (SAC's actor loss is built before the critic steps), so the edit waits for the end of
        the ``train()`` call in which the ``every``-th optimizer step happened.
        """
        every = self.config.every
        if self.config.intervention is None or not every:
            return
        steps = self.elrs[self.primary].steps
        if steps // every > self._intervened_at // every:
            self.intervene()

    def intervene(self) -> dict[str, dict[str, int]]:
        """Run the configured intervention on every network now: ``{network: {layer: units reset}}``.

        ReDo needs a batch of recent observations; before the agent has any it does nothing (``{}``).
        """
        kind = self.config.intervention
        if kind is None:
            raise RuntimeError(
                "this agent's plasticity has no intervention; set plasticity={'intervention': 'redo'} (or 'shrink-perturb', 'reset')"
            )
        inputs = self._inputs() if kind == "redo" and self._inputs is not None else None
        if kind == "redo" and inputs is None:
            return {}
        report: dict[str, dict[str, int]] = {}
        for name, net in self.networks.items():
            report[name] = self._intervene_on(net, kind, inputs)
        self.interventions += 1
        self._intervened_at = self.elrs[self.primary].steps
        prefix = kind
        total = 0
        for net_name, layers in report.items():
            for layer, units in layers.items():
                self._intervention_log[f"{prefix}/units_reset/{self._key(net_name, layer)}"] = units
                total += units
        self._intervention_log[f"{prefix}/units_reset"] = total
        self._intervention_log[f"{prefix}/count"] = self.interventions
        return report

    def _intervene_on(self, net: Network, kind: str, inputs: Any) -> dict[str, int]:
        c = self.config
        if kind == "redo":
            reset = interventions.redo(net.module, net.optimizer, inputs, c.redo_tau, forward=net.forward,
                                       init=net.init, mirrors=net.mirrors, exclude=net.exclude)  # fmt: skip
            return {layer: len(units) for layer, units in reset.items()}
        if kind == "shrink-perturb":
            done = interventions.shrink_perturb(net.module, net.optimizer, c.shrink, c.perturb, layers=self._layers(net, "all"),
                                                init=net.init, mirrors=net.mirrors)  # fmt: skip
        else:
            done = interventions.reset(net.module, net.optimizer, self._layers(net, c.reset_layers), init=net.init, mirrors=net.mirrors)
        modules = dict(net.module.named_modules())
        return {name: modules[name].weight.shape[0] for name in done if isinstance(modules[name], WEIGHT_LAYERS)}

    @staticmethod
    def _layers(net: Network, which: str) -> list[str]:
        """``"heads"`` (weight layers nothing normalizes or activates after: the outputs), ``"all"``, or names."""
        if which not in ("heads", "all"):
            return [name.strip() for name in which.split(",") if name.strip()]
        chosen = []
        for name, module in net.module.named_modules():
            if not any(p is not None for p in module._parameters.values()) or matches(name, net.exclude):
                continue
            chosen.append(name)
        if which == "heads":
            heads = {b.name for b in iter_blocks(net.module) if b.activation is None and b.norm is None}
            chosen = [name for name in chosen if name in heads]
        return chosen

    def pop_intervention_log(self) -> dict[str, float]:
        """What the interventions since the last call reset (``<kind>/units_reset[/<layer>]``, ``<kind>/count``)."""
        log, self._intervention_log = self._intervention_log, {}
        return log

    # -- persistence -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: elr.state_dict() for name, elr in self.elrs.items()}
        state[INTERVENTION_STATE] = {"count": self.interventions, "at": self._intervened_at}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        bookkeeping = state.pop(INTERVENTION_STATE, {"count": 0, "at": 0})  # zips from before interventions have none
        self.interventions, self._intervened_at = int(bookkeeping["count"]), int(bookkeeping["at"])
        if set(state) != set(self.elrs):
            raise ValueError(f"plasticity state has networks {sorted(state)}, this agent has {sorted(self.elrs)}")
        for name, elr_state in state.items():
            self.elrs[name].load_state_dict(elr_state)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        for elr in self.elrs.values():
            elr.remove()
