import gymnasium as gym
import pytest
import torch
from torch import nn

from plastic_rl.layers import ChannelRMSNorm, iter_blocks
from plastic_rl.norm import insert_norm


def mlp(act=nn.Tanh):
    return nn.Sequential(nn.Linear(4, 16), act(), nn.Linear(16, 16), act(), nn.Linear(16, 2))


def kinds(seq):
    return [type(m).__name__ for m in seq]


def test_inserts_between_linear_and_activation_but_not_after_the_head():
    net = insert_norm(mlp())
    assert kinds(net) == ["Linear", "LayerNorm", "Tanh", "Linear", "LayerNorm", "Tanh", "Linear"]
    assert net[1].normalized_shape == (16,)


def test_existing_names_and_state_dict_keys_are_kept():
    plain = mlp()
    keys = set(plain.state_dict())
    net = insert_norm(plain)
    assert keys <= set(net.state_dict())
    assert {"0_norm.weight", "2_norm.weight"} <= set(net.state_dict())


def test_idempotent():
    net = insert_norm(insert_norm(mlp(nn.ReLU)))
    assert kinds(net).count("LayerNorm") == 2


def test_rms_kind_and_exclude():
    net = insert_norm(mlp(nn.ReLU), kind="rms", exclude=["2"])
    assert kinds(net) == ["Linear", "RMSNorm", "ReLU", "Linear", "ReLU", "Linear"]


def test_sb3_mlp_extractor_and_nature_cnn():
    from stable_baselines3.common.torch_layers import MlpExtractor, NatureCNN

    ext = insert_norm(MlpExtractor(4, dict(pi=[64, 64], vf=[64, 64]), nn.Tanh))
    for seq in (ext.policy_net, ext.value_net):
        assert kinds(seq) == ["Linear", "LayerNorm", "Tanh", "Linear", "LayerNorm", "Tanh"]
    pi, vf = ext(torch.randn(3, 4))
    assert pi.shape == vf.shape == (3, 64)

    space = gym.spaces.Box(0, 255, (4, 84, 84), dtype="uint8")
    cnn = insert_norm(NatureCNN(space, features_dim=512))
    assert kinds(cnn.cnn) == ["Conv2d", "GroupNorm", "ReLU", "Conv2d", "GroupNorm", "ReLU", "Conv2d", "GroupNorm", "ReLU", "Flatten"]
    assert kinds(cnn.linear) == ["Linear", "LayerNorm", "ReLU"]
    assert cnn(torch.zeros(2, 4, 84, 84)).shape == (2, 512)
    rms = insert_norm(NatureCNN(space), kind="rms")
    assert isinstance(rms.cnn[1], ChannelRMSNorm)


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_inserted_layers_are_scale_invariant(kind):
    torch.manual_seed(0)
    net = insert_norm(
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 32), nn.ReLU(), nn.Linear(32, 2)),
        kind=kind,
    )
    x = torch.randn(5, 3, 8, 8)
    before = net(x)
    with torch.no_grad():
        for block in iter_blocks(net):
            if block.norm is not None:  # weight and bias jointly: Norm(c(Wx+b)) == Norm(Wx+b)
                block.layer.weight.mul_(7.5)
                block.layer.bias.mul_(7.5)
    torch.testing.assert_close(net(x), before, rtol=1e-4, atol=1e-5)


def test_new_norm_follows_device_and_dtype():
    net = insert_norm(nn.Sequential(nn.Linear(3, 5), nn.ReLU()).double())
    assert net[1].weight.dtype == torch.float64


def test_bad_input():
    with pytest.raises(ValueError, match="kind='batch'.*accepted: layer, rms"):
        insert_norm(mlp(), kind="batch")
    with pytest.raises(ValueError, match="has no Linear/Conv layer"):
        insert_norm(nn.Sequential(nn.ReLU(), nn.Tanh()))
    with pytest.raises(ValueError, match="no Linear/Conv followed by an activation"):
        insert_norm(nn.Linear(3, 3))
