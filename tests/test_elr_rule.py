"""The safe default's schedule (issue 20): ImplicitDecay and the rule that sets its rate from hyperparameters."""

import math

import pytest
import torch
from torch import nn

from plastic_rl.elr import ELR, ImplicitDecay, implicit_decay_rate
from plastic_rl.norm import insert_norm


def layer_norm(m: nn.Linear) -> float:
    """||(W, b)||_F: the norm projection keeps."""
    return float(torch.cat([m.weight.detach().flatten(), m.bias.detach()]).norm())


def test_rate_known_answer():
    # lr^2 * sum(P) / sum(||W_0||^2) = 1e-6 * (100 + 300) / (2^2 + 4^2)
    assert implicit_decay_rate(1e-3, [(100, 2.0), (300, 4.0)]) == pytest.approx(2e-5)
    assert implicit_decay_rate(1e-3, [(100, 2.0), (300, 4.0)], "RMSprop") == pytest.approx(2e-5)


def test_rate_is_a_pure_function_of_its_inputs():
    layers = [(1280, 10.3), (65792, 9.27)]
    first = [ImplicitDecay(implicit_decay_rate(2.3e-3, layers)) for _ in range(2)]
    runs = [[s.factor() for _ in range(50) if s.step() is None] for s in first]
    assert runs[0] == runs[1]
    assert implicit_decay_rate(2.3e-3, layers) == implicit_decay_rate(2.3e-3, list(layers))


def test_a_zero_lr_has_no_decay():  # a model loaded for inference (diagnose loads with lr 0)
    assert implicit_decay_rate(0.0, [(10, 1.0)]) == 0.0


def test_rate_scales_with_lr_squared_and_inverse_square_norm():
    base = implicit_decay_rate(1e-3, [(64, 1.0)])
    assert implicit_decay_rate(2e-3, [(64, 1.0)]) == pytest.approx(4 * base)
    assert implicit_decay_rate(1e-3, [(64, 2.0)]) == pytest.approx(base / 4)


@pytest.mark.parametrize(
    "args, match",
    [
        ((1e-3, [(10, 1.0)], "SGD"), "schedule 'decay' needs an adaptive optimizer (Adam, AdamW, Adamax, NAdam, RAdam, RMSprop), got SGD"),
        ((1e-3, []), "needs at least one projected layer"),
        ((-1e-3, [(10, 1.0)]), "lr=-0.001 must be a finite number >= 0"),
        ((1e-3, [(10, 0.0)]), "need parameter counts > 0 and finite, non-zero norms"),
    ],
)
def test_rate_bad_input(args, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        implicit_decay_rate(*args)


def test_implicit_decay_known_values_and_rewarm():
    s = ImplicitDecay(rate=0.01)
    values = []
    for _ in range(301):
        values.append(s.factor())
        s.step(loss=1.0)
    assert values[0] == 1.0  # the first step at the owner's lr, as SB3's agent starts
    assert values[100] == pytest.approx(1 / math.sqrt(2))
    assert values[300] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(values, values[1:]))  # decays while the task holds
    s.rewarm()
    assert s.factor() == 1.0  # a re-warm puts the ELR back where it started
    state = s.state_dict()
    for _ in range(7):
        s.step()
    other = ImplicitDecay(rate=0.5)
    other.load_state_dict(state)
    assert other.rate == 0.01 and other.factor() == 1.0


def test_implicit_decay_zero_rate_is_constant_and_bad_rate_is_refused():
    s = ImplicitDecay(0.0)
    for _ in range(10):
        s.step()
    assert s.factor() == 1.0
    with pytest.raises(ValueError, match=r"rate=-1.0 must be a finite number >= 0"):
        ImplicitDecay(-1.0)


def test_projected_layers_are_the_normalized_ones_with_their_initial_norms():
    torch.manual_seed(0)
    net = insert_norm(nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 2)))
    elr = ELR(net, torch.optim.Adam(net.parameters(), lr=1e-3))
    first, second = net[0], net[3]  # Linear, Norm, ReLU, Linear, Norm, ReLU, Linear
    expected = [(m.weight.numel() + m.bias.numel(), layer_norm(m)) for m in (first, second)]
    got = elr.projected_layers()
    assert [n for n, _ in got] == [n for n, _ in expected]  # the output layer is not projected
    assert [v for _, v in got] == pytest.approx([v for _, v in expected])


def test_the_decay_models_a_normalized_networks_norm_growth():
    """The derivation's premise, measured: without projection, a normalized layer's squared norm grows by
    about the squared Adam step (the step is nearly orthogonal to W), about lr per coordinate: so the
    pooled squared norm follows 1 + rate * t (measured 1.50 vs 1.52 at 50 steps, 4.62 vs 5.14 at 400)."""
    torch.manual_seed(0)
    net = insert_norm(nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)))
    lr = 1e-2
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    hidden = [net[0], net[3]]
    rate = implicit_decay_rate(lr, [(m.weight.numel() + m.bias.numel(), layer_norm(m)) for m in hidden])
    initial = sum(layer_norm(m) ** 2 for m in hidden)
    x, y = torch.randn(512, 8), torch.randn(512, 1)
    for t in range(1, 401):
        opt.zero_grad()
        batch = torch.randint(0, 512, (32,))  # minibatch noise, as in RL
        nn.functional.mse_loss(net(x[batch]), y[batch]).backward()
        opt.step()
        if t in (50, 400):
            grown = sum(layer_norm(m) ** 2 for m in hidden) / initial
            assert 0.7 * (1 + rate * t) <= grown <= 1.05 * (1 + rate * t), (t, grown, 1 + rate * t)


def test_the_docs_example_runs():
    """docs/elr_rule.md's examples (norm-rewarm, ImplicitDecay) on a plain PyTorch model (their asserts are the known answers)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "elr_rule.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2  # norm-rewarm's and elr-decay's
    for block in blocks:
        exec(compile(block, "docs/elr_rule.md", "exec"), {})
