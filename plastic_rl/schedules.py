"""Re-warm schedules: learning-rate *multipliers* that ``elr.ELR`` applies on top of the owner's lr.

A schedule never sets a learning rate; it returns a factor. Whoever owns the optimizer (SB3's lr
schedule, a torch LR scheduler, a constant) keeps setting the base learning rate, and the optimizer
steps with ``base * factor``. Re-warming (Lyle et al. 2025) means restarting a linear warm-up to a
peak followed by a cosine decay: periodically (``CyclicRewarm``), when a change-point detector sees
the loss rise (``CusumRewarm``), or only when the caller says so (``OnDemandRewarm``: a known task
switch); every schedule also restarts on ``rewarm()``. ``ImplicitDecay`` is the safe default's
schedule: the ELR decay a normalized network *without* projection would have, made explicit, and
restarted at a change (docs/elr_rule.md derives it).

Convention: ``factor()`` is the multiplier for the *next* optimizer step; ``step(loss)`` is called
once after each optimizer step. ``s`` below counts optimizer steps since the last (re)start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def warmup_cosine(s: int, warmup: int, decay: int, peak: float, floor: float) -> float:
    """Linear warm-up then cosine decay, as a function of steps ``s`` since the (re)start.

    f(s) = floor + (peak - floor) * (s + 1) / warmup                      for s < warmup
    f(s) = floor + (peak - floor) * (1 + cos(pi * (s - warmup) / decay)) / 2  for warmup <= s < warmup + decay
    f(s) = floor                                                          afterwards
    So the first step after a restart already learns (factor > floor) and the peak is reached on step
    ``warmup - 1`` and held for one more step at the start of the decay.

    :param s: optimizer steps since the (re)start
    :param warmup: length of the linear warm-up, in steps (0: start at ``peak``)
    :param decay: length of the cosine decay from ``peak`` to ``floor``, in steps
    :param peak: the factor at the end of the warm-up (a multiplier of the owner's lr: 1.0 is the owner's lr)
    :param floor: the factor the warm-up starts from and the decay ends at, held afterwards
    """
    if s < warmup:
        return floor + (peak - floor) * (s + 1) / warmup
    s -= warmup
    if s >= decay:
        return floor
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * s / decay))


def _check_profile(warmup: int, peak: float, floor: float) -> None:
    if not (isinstance(warmup, int) and warmup >= 0):
        raise ValueError(f"warmup={warmup!r} must be an int >= 0")
    if not (math.isfinite(peak) and peak > 0):
        raise ValueError(f"peak={peak!r} must be a finite number > 0")
    if not (math.isfinite(floor) and 0 <= floor <= peak):
        raise ValueError(f"floor={floor!r} must be in [0, peak={peak}]")


class Schedule:
    """Base class: the interface ``ELR`` drives. Subclasses keep all their state in ``state_dict``."""

    def factor(self) -> float:
        raise NotImplementedError

    def step(self, loss: float | None = None) -> None:
        raise NotImplementedError

    def rewarm(self) -> None:
        raise NotImplementedError

    def restarts(self) -> int:
        """A count that grows by one each time the schedule restarts *by itself* (a cycle's end, a CUSUM alarm;
        not ``rewarm()``, which may reset it): ``ELR(project="on-rewarm")`` shrinks the layers back when it grows."""
        return 0

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state) - set(vars(self))
        if unknown:
            raise ValueError(f"{type(self).__name__} state has unknown keys {sorted(unknown)}; expected {sorted(vars(self))}")
        vars(self).update(state)


class CyclicRewarm(Schedule):
    """Warm-up to ``peak`` then cosine to ``floor``, restarted every ``period`` steps (and on ``rewarm()``).

    :param period: steps between restarts (>= 1); each cycle is the warm-up then a cosine decay over the rest
    :param warmup: warm-up steps of each cycle, <= ``period`` (None: ``period // 10``)
    :param peak: the factor at the end of the warm-up, a multiplier of the owner's lr (1.0: the owner's lr)
    :param floor: the factor the warm-up rises from and the decay falls to, a multiplier of the owner's lr, in [0, peak]
    """

    def __init__(self, period: int, warmup: int | None = None, peak: float = 1.0, floor: float = 0.1):
        if not (isinstance(period, int) and period >= 1):
            raise ValueError(f"period={period!r} must be an int >= 1")
        warmup = period // 10 if warmup is None else warmup
        _check_profile(warmup, peak, floor)
        if warmup > period:
            raise ValueError(f"warmup={warmup} must be <= period={period}")
        self.period = period
        self.warmup = warmup
        self.peak = float(peak)
        self.floor = float(floor)
        self.t = 0  # steps since the last rewarm()

    def factor(self) -> float:
        return warmup_cosine(self.t % self.period, self.warmup, self.period - self.warmup, self.peak, self.floor)

    def step(self, loss: float | None = None) -> None:
        self.t += 1

    def rewarm(self) -> None:
        self.t = 0

    def restarts(self) -> int:
        return self.t // self.period


class CusumRewarm(Schedule):
    """Re-warm when a one-sided CUSUM detector sees the loss rise (a change point in the data stream).

    The lr factor follows ``warmup_cosine`` from the start and from every alarm, then ``floor`` until the next alarm.

    Detector (Page 1954), on the loss x_t:
      z_t = clip((x_t - mu) / sigma, -clip, clip);  S_t = max(0, S_{t-1} + z_t - drift);  alarm if S_t > threshold.
    mu and sigma are first estimated over ``burn_in`` losses, then tracked with a slow exponential
    moving average: slow enough that a rise is not absorbed while the evidence for it accumulates, fast
    enough to follow a decreasing training loss. (Updating only while S == 0 looks tempting but biases
    mu and sigma low: it keeps the low samples and drops the high ones, and false alarms follow.)
    With the defaults a rise of one noise standard deviation is detected in 30-60 steps, and 10 x 20,000
    steps of stationary Gaussian noise, or of a decaying loss with Student-t noise, raise no alarm
    (tests/test_schedules.py).

    :param warmup: steps of the linear warm-up from ``floor`` to ``peak`` after the start and every alarm
    :param decay: steps of the cosine decay from ``peak`` to ``floor`` that follows
    :param peak: the factor at the end of the warm-up, a multiplier of the owner's lr (1.0: the owner's lr)
    :param floor: the factor the warm-up rises from and the decay falls to (held until the next alarm), in [0, peak]
    :param threshold: alarm when S_t exceeds it, in loss standard deviations (a sum of z's)
    :param drift: subtracted from every z, in loss standard deviations: a rise smaller than it accumulates nothing
    :param alpha: rate of the moving average of mu and sigma after the burn-in, in (0, 1): a ~1/alpha-step memory
    :param burn_in: losses that first estimate mu and sigma (>= 2), at the start and again after each alarm
    :param cooldown: losses ignored after an alarm or ``rewarm()`` before the burn-in (None: ``warmup``,
        whose own lr change moves the loss)
    :param clip: bound on |z|, in loss standard deviations: what one outlier can add to S_t
    """

    def __init__(
        self,
        warmup: int = 1000,
        decay: int = 10000,
        peak: float = 1.0,
        floor: float = 0.1,
        threshold: float = 16.0,
        drift: float = 0.5,
        alpha: float = 0.001,
        burn_in: int = 200,
        cooldown: int | None = None,
        clip: float = 4.0,
    ):
        _check_profile(warmup, peak, floor)
        if not (isinstance(decay, int) and decay >= 0):
            raise ValueError(f"decay={decay!r} must be an int >= 0")
        for name, value in (("threshold", threshold), ("drift", drift), ("clip", clip)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be a finite number > 0")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha={alpha!r} must be in (0, 1)")
        if not (isinstance(burn_in, int) and burn_in >= 2):
            raise ValueError(f"burn_in={burn_in!r} must be an int >= 2")
        cooldown = warmup if cooldown is None else cooldown
        if not (isinstance(cooldown, int) and cooldown >= 0):
            raise ValueError(f"cooldown={cooldown!r} must be an int >= 0")
        self.warmup, self.decay, self.peak, self.floor = warmup, decay, float(peak), float(floor)
        self.threshold, self.drift, self.alpha, self.clip = float(threshold), float(drift), float(alpha), float(clip)
        self.burn_in, self.cooldown = burn_in, cooldown
        self.t = 0  # steps since the last (re)start of the profile
        self.steps = 0  # steps seen in total
        self.alarms: list[int] = []  # step numbers (``steps``) of every alarm
        self.statistic = 0.0  # S_t
        self.ignore = 0  # losses still to ignore (cooldown)
        self.n = 0  # losses in the current burn-in
        self.mean = 0.0
        self.var = 0.0  # burn-in: running sum of squared deviations (Welford M2); afterwards the EMA variance

    def factor(self) -> float:
        return warmup_cosine(self.t, self.warmup, self.decay, self.peak, self.floor)

    def rewarm(self) -> None:
        """Restart the warm-up and the detector (its baseline is re-learned after the cooldown)."""
        self.t = 0
        self.statistic = 0.0
        self.ignore = self.cooldown
        self.n = 0
        self.mean = self.var = 0.0

    def step(self, loss: float | None = None) -> None:
        self.t += 1
        self.steps += 1
        if loss is None:
            return
        if self.ignore > 0:
            self.ignore -= 1
            return
        if self.n < self.burn_in:  # Welford's running mean and variance
            self.n += 1
            delta = loss - self.mean
            self.mean += delta / self.n
            self.var += delta * (loss - self.mean)
            if self.n == self.burn_in:
                self.var /= self.n - 1
            return
        sigma = math.sqrt(self.var) + 1e-12
        z = min(max((loss - self.mean) / sigma, -self.clip), self.clip)
        self.statistic = max(0.0, self.statistic + z - self.drift)
        if self.statistic > self.threshold:
            self.alarms.append(self.steps)
            self.rewarm()
        else:
            delta = loss - self.mean
            self.mean += self.alpha * delta
            self.var = (1 - self.alpha) * (self.var + self.alpha * delta * delta)

    def restarts(self) -> int:
        return len(self.alarms)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.alarms = list(self.alarms)


class OnDemandRewarm(Schedule):
    """Factor ``idle`` until the first ``rewarm()``; from each ``rewarm()``: warm-up to ``peak``, cosine to ``floor``.

    For change points the caller knows (a task switch announced by ``TaskSequence``, the data change
    of warm-starting): before the first ``rewarm()`` the network trains exactly as it would without a
    schedule (``idle=1``), which ``CyclicRewarm`` (restarts by itself) and ``CusumRewarm`` (warms up at
    step 0) cannot do.

    :param warmup: steps of the linear warm-up from ``floor`` to ``peak`` after each ``rewarm()``
    :param decay: steps of the cosine decay from ``peak`` to ``floor`` that follows; ``floor`` is held afterwards
    :param peak: the factor at the end of the warm-up, a multiplier of the owner's lr (1.0: the owner's lr)
    :param floor: the factor the warm-up rises from and the decay falls to (held until the next ``rewarm()``), in [0, peak]
    :param idle: the factor before the first ``rewarm()`` (1.0: the owner's lr, as without a schedule)
    """

    def __init__(self, warmup: int, decay: int, peak: float = 1.0, floor: float = 0.1, idle: float = 1.0):
        if not (isinstance(decay, int) and decay >= 0):
            raise ValueError(f"decay={decay!r} must be an int >= 0")
        _check_profile(warmup, peak, floor)
        if not (math.isfinite(idle) and idle >= 0):
            raise ValueError(f"idle={idle!r} must be a finite number >= 0")
        self.warmup, self.decay = warmup, decay
        self.peak, self.floor, self.idle = float(peak), float(floor), float(idle)
        self.t = 0  # steps since the last rewarm()
        self.started = False

    def factor(self) -> float:
        if not self.started:
            return self.idle
        return warmup_cosine(self.t, self.warmup, self.decay, self.peak, self.floor)

    def step(self, loss: float | None = None) -> None:
        if self.started:
            self.t += 1

    def rewarm(self) -> None:
        self.started = True
        self.t = 0


# Optimizers whose step moves each coordinate by about lr whatever the gradient's scale (the premise of
# implicit_decay_rate); SGD's step is lr * gradient, which no hyperparameter predicts.
ADAPTIVE_OPTIMIZERS = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop")


def implicit_decay_rate(lr: float, layers: Iterable[tuple[int, float]], optimizer: str = "Adam") -> float:
    """The rate of ``ImplicitDecay``: how fast a normalized network's ELR would decay without projection.

    A normalized (scale-invariant) layer's gradient is orthogonal to its weights W, so a step u adds
    ``||u||^2`` to ``||W||^2`` and nothing else (Pythagoras): the norm grows and the ELR ``||u|| / ||W||``
    decays. An adaptive optimizer (Adam, RMSprop) moves each of a layer's P coordinates by at most about
    ``lr`` per step, so ``||u||^2 <= lr^2 P``. Pooled over the projected layers, after t steps
    ``sum ||W||^2 = sum ||W_0||^2 + t lr^2 sum P``, and the ELR has fallen by the factor
    ``1 / sqrt(1 + rate * t)`` with ``rate = lr^2 * sum(P) / sum(||W_0||^2)``. Projection removes this
    decay; ``ImplicitDecay(rate)`` puts it back as an explicit lr factor, which a re-warm can undo.

    A pure function of hyperparameters: the lr, the optimizer, and each projected layer's parameter
    count and initial norm (net_arch and the init scheme).

    :param lr: the optimizer's learning rate at the start (an SB3 schedule's initial value); 0 (a model loaded
        for inference, e.g. by diagnose) gives rate 0
    :param layers: ``(number of parameters, initial Frobenius norm)`` of each projected layer (weight and bias jointly)
    :param optimizer: the optimizer's class name; one of ``ADAPTIVE_OPTIMIZERS``
    """
    if optimizer not in ADAPTIVE_OPTIMIZERS:
        raise ValueError(
            f"schedule 'decay' needs an adaptive optimizer ({', '.join(ADAPTIVE_OPTIMIZERS)}), got {optimizer}: "
            "an SGD step is lr * gradient, so its norm growth is not set by the hyperparameters; use schedule=None"
        )
    layers = list(layers)
    if not layers:
        raise ValueError("schedule 'decay' needs at least one projected layer (a hidden layer followed by a normalization)")
    if not (math.isfinite(lr) and lr >= 0):
        raise ValueError(f"lr={lr!r} must be a finite number >= 0")
    params = sum(int(n) for n, _ in layers)
    square_norms = sum(float(norm) ** 2 for _, norm in layers)
    if not (params > 0 and math.isfinite(square_norms) and square_norms > 0):
        raise ValueError(f"layers={layers!r}: need parameter counts > 0 and finite, non-zero norms")
    return lr * lr * params / square_norms


class ImplicitDecay(Schedule):
    """Factor ``1 / sqrt(1 + rate * s)``, s the optimizer steps since the start or the last ``rewarm()``.

    The ELR a normalized network trained without projection would have, relative to its first step
    (``implicit_decay_rate``): the decay a tuned lr was tuned with (an unnormalized network's norm
    grows too), kept while the task holds. ``rewarm()`` restarts it: the ELR returns to its value at
    initialization, as if the weights had been shrunk back to their initial norm (the paper's re-warm),
    at a task switch the caller knows (``model.plasticity.rewarm()``, ``RewarmOnSwitch``).

    :param rate: the decay rate per optimizer step (>= 0; 0 is a constant factor 1), from ``implicit_decay_rate``
    """

    def __init__(self, rate: float):
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"rate={rate!r} must be a finite number >= 0")
        self.rate = float(rate)
        self.t = 0  # steps since the start or the last rewarm()

    def factor(self) -> float:
        return 1.0 / math.sqrt(1.0 + self.rate * self.t)

    def step(self, loss: float | None = None) -> None:
        self.t += 1

    def rewarm(self) -> None:
        self.t = 0


SCHEDULES = {"cyclic": CyclicRewarm, "cusum": CusumRewarm, "on-demand": OnDemandRewarm, "decay": ImplicitDecay}


def make_schedule(kind: str | None, **kwargs: Any) -> Schedule | None:
    """Build a schedule from a name, or None for no schedule.

    :param kind: a key of ``SCHEDULES`` (``"cyclic"``, ``"cusum"``, ``"on-demand"``), or None / ``"none"`` (returns None)
    :param kwargs: the schedule's keywords (e.g. ``period=10_000`` for ``"cyclic"``)
    """
    if kind is None or kind == "none":
        return None
    if kind not in SCHEDULES:
        raise ValueError(f"schedule {kind!r} is unknown; accepted: none, {', '.join(SCHEDULES)}")
    return SCHEDULES[kind](**kwargs)
