import math

import numpy as np
import pytest

from plastic_rl.elr import CusumRewarm, CyclicRewarm, OnDemandRewarm, warmup_cosine


def factors(schedule, n, loss=None):
    out = []
    for _ in range(n):
        out.append(schedule.factor())
        schedule.step(loss)
    return out


def test_cyclic_known_values():
    s = CyclicRewarm(period=100, warmup=10, peak=2.0, floor=0.5)
    f = factors(s, 250)
    # warm-up: floor + (peak - floor) * (s + 1) / warmup
    assert f[0] == pytest.approx(0.5 + 1.5 * 1 / 10)
    assert f[4] == pytest.approx(0.5 + 1.5 * 5 / 10)
    assert f[9] == pytest.approx(2.0)
    # cosine over the remaining 90 steps: half-way is the mid-point
    assert f[10] == pytest.approx(2.0)
    assert f[55] == pytest.approx(0.5 + 1.5 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert f[55] == pytest.approx(1.25)
    assert f[99] == pytest.approx(0.5 + 1.5 * 0.5 * (1 + math.cos(math.pi * 89 / 90)))
    # restarted every period
    assert f[100:200] == pytest.approx(f[:100])
    assert f[200] == pytest.approx(f[0])


def test_cyclic_defaults_and_rewarm():
    s = CyclicRewarm(period=1000)
    assert (s.warmup, s.peak, s.floor) == (100, 1.0, 0.1)
    factors(s, 600)
    assert s.factor() < 0.9
    s.rewarm()
    assert s.factor() == pytest.approx(warmup_cosine(0, 100, 900, 1.0, 0.1))
    assert factors(s, 1000) == pytest.approx(factors(CyclicRewarm(period=1000), 1000))


def test_cyclic_without_warmup_starts_at_peak():
    assert CyclicRewarm(period=10, warmup=0, peak=3.0, floor=0.0).factor() == 3.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(period=0), "period=0"),
        (dict(period=10, warmup=11), "warmup=11 must be <= period=10"),
        (dict(period=10, peak=-1.0), "peak=-1.0"),
        (dict(period=10, floor=2.0), r"floor=2.0 must be in \[0, peak=1.0\]"),
    ],
)
def test_cyclic_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CyclicRewarm(**kwargs)


def test_cyclic_state_round_trip():
    s = CyclicRewarm(period=50, warmup=5)
    factors(s, 37)
    t = CyclicRewarm(period=50, warmup=5)
    t.load_state_dict(s.state_dict())
    assert factors(t, 80) == factors(s, 80)


def run_cusum(stream, **kwargs):
    s = CusumRewarm(**kwargs)
    for x in stream:
        s.step(float(x))
    return s


def test_cusum_fires_soon_after_a_step_up():
    rng = np.random.default_rng(0)
    stream = 1.0 + 0.1 * rng.standard_normal(4000)
    stream[2000:] += 0.1  # a rise of one noise standard deviation
    s = run_cusum(stream)
    assert s.alarms, "no alarm after the change"
    assert 2000 < s.alarms[0] <= 2100
    assert s.t == 4000 - s.alarms[0]  # the warm-up restarted at the alarm


def test_cusum_silent_on_stationary_noise():
    rng = np.random.default_rng(0)
    assert run_cusum(1.0 + 0.1 * rng.standard_normal(20_000)).alarms == []


def test_cusum_silent_on_a_decreasing_heavy_tailed_loss():
    rng = np.random.default_rng(1)
    t = np.arange(20_000)
    stream = 0.2 + np.exp(-t / 3000) + 0.05 * rng.standard_t(3, size=t.size)
    assert run_cusum(stream).alarms == []


def test_cusum_factor_profile_and_rewarm():
    s = CusumRewarm(warmup=10, decay=20, peak=3.0, floor=1.0)
    f = factors(s, 40)
    assert f[9] == 3.0 and f[29] > 1.0 and f[30:] == [1.0] * 10
    s.rewarm()
    assert s.factor() == pytest.approx(1.2)


def test_cusum_state_round_trip_continues_identically():
    rng = np.random.default_rng(2)
    stream = 1.0 + 0.1 * rng.standard_normal(3000)
    stream[1500:] += 0.3
    a = run_cusum(stream[:1000])
    b = CusumRewarm()
    b.load_state_dict(a.state_dict())
    for x in stream[1000:]:
        a.step(float(x))
        b.step(float(x))
        assert a.factor() == b.factor()
    assert a.alarms == b.alarms and a.alarms


def test_cusum_bad_input():
    with pytest.raises(ValueError, match="alpha=1.5"):
        CusumRewarm(alpha=1.5)
    with pytest.raises(ValueError, match="threshold=0"):
        CusumRewarm(threshold=0)
    with pytest.raises(ValueError, match="unknown keys"):
        CusumRewarm().load_state_dict({"bogus": 1})


def test_on_demand_rewarm_is_idle_until_rewarm():
    s = OnDemandRewarm(warmup=2, decay=2, peak=10.0, floor=1.0, idle=0.5)
    factors = []
    for _ in range(3):
        factors.append(s.factor())
        s.step()
    s.rewarm()
    for _ in range(6):
        factors.append(s.factor())
        s.step()
    assert factors[:3] == [0.5] * 3
    assert factors[3:] == pytest.approx([5.5, 10.0, 10.0, 5.5, 1.0, 1.0])


def test_on_demand_state_round_trip_continues_identically():
    s = OnDemandRewarm(warmup=3, decay=5, peak=2.0, floor=1.0)
    factors(s, 4)
    s.rewarm()
    factors(s, 2)
    t = OnDemandRewarm(warmup=3, decay=5, peak=2.0, floor=1.0)
    t.load_state_dict(s.state_dict())
    assert t.started and factors(t, 10) == factors(s, 10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(warmup=-1, decay=5), "warmup=-1 must be an int >= 0"),
        (dict(warmup=2, decay=-5), "decay=-5 must be an int >= 0"),
        (dict(warmup=2, decay=5, peak=1.0, floor=2.0), r"floor=2.0 must be in \[0, peak=1.0\]"),
        (dict(warmup=2, decay=5, idle=float("nan")), "idle=nan must be a finite number >= 0"),
    ],
)
def test_on_demand_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OnDemandRewarm(**kwargs)
