"""SB3's action distributions without torch's argument checks, for the normalized policies.

torch checks a distribution's parameters when it is built and every value passed to ``log_prob``
(``constraints.check``, ``_validate_sample``). A PPO rollout builds one distribution per env step, so on
CartPole with SB3's defaults the checks took ~13% of a PlasticPPO iteration (issue 24): more than the
normalization costs. The values computed are the same with or without them. What they catch, non-finite
logits after a divergence, is still caught, one step later: ``torch.multinomial`` refuses NaN
probabilities when sampling, and ``ELR.step`` raises ``FloatingPointError`` on a non-finite loss. The
``none`` preset keeps SB3's checked distributions (it is SB3, exactly).

Each class is SB3's own, building its torch distribution(s) with checks off; ``unchecked`` turns an SB3
distribution object into one of its unchecked class (same state, picklable by name).
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    MultiCategoricalDistribution,
    SquashedDiagGaussianDistribution,
    StateDependentNoiseDistribution,
)
from torch import distributions as td

__all__ = ["unchecked", "uncheck_action_dist", "UNCHECKED"]


class Unchecked:
    """Mixin: SB3's ``proba_distribution`` with torch's argument checks off while it builds, and off on the result."""

    distribution: Any

    def proba_distribution(self, *args: Any, **kwargs: Any) -> Any:
        default = td.Distribution._validate_args  # torch's global default (set_default_validate_args)
        td.Distribution.set_default_validate_args(False)
        try:
            out = super().proba_distribution(*args, **kwargs)  # type: ignore[misc]
        finally:
            td.Distribution.set_default_validate_args(default)
        for dist in self.distribution if isinstance(self.distribution, list) else [self.distribution]:
            dist._validate_args = False  # log_prob reads it on the instance, after the default is restored
        return out


class UncheckedCategorical(Unchecked, CategoricalDistribution):
    pass


class UncheckedMultiCategorical(Unchecked, MultiCategoricalDistribution):
    pass


class UncheckedBernoulli(Unchecked, BernoulliDistribution):
    pass


class UncheckedDiagGaussian(Unchecked, DiagGaussianDistribution):
    pass


class UncheckedSquashedDiagGaussian(Unchecked, SquashedDiagGaussianDistribution):
    pass


class UncheckedStateDependentNoise(Unchecked, StateDependentNoiseDistribution):
    pass


UNCHECKED: dict[type, Any] = {
    CategoricalDistribution: UncheckedCategorical,
    MultiCategoricalDistribution: UncheckedMultiCategorical,
    BernoulliDistribution: UncheckedBernoulli,
    DiagGaussianDistribution: UncheckedDiagGaussian,
    SquashedDiagGaussianDistribution: UncheckedSquashedDiagGaussian,
    StateDependentNoiseDistribution: UncheckedStateDependentNoise,
}


def unchecked(action_dist: Any) -> Any:
    """A copy of ``action_dist`` (same attributes) of its unchecked class; a distribution class SB3 does not
    ship (a user's own) is returned as it is.

    :param action_dist: an SB3 distribution object (a policy's ``action_dist``)
    """
    cls = UNCHECKED.get(type(action_dist))
    if cls is None:
        return action_dist
    copy = cls.__new__(cls)
    copy.__dict__.update(action_dist.__dict__)
    return copy


def uncheck_action_dist(owner: Any) -> None:
    """Replace ``owner.action_dist`` (a policy's or SAC actor's, if it has one) by its unchecked copy.

    :param owner: an SB3 policy or actor
    """
    if hasattr(owner, "action_dist"):
        owner.action_dist = unchecked(owner.action_dist)
