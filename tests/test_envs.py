"""The environments: the envpool adapter against envpool's raw stepping, presets, make_vec_env, TaskSequence.

The oracle for the adapter is envpool itself, stepped raw with its own auto-reset: there a finished env
spends its next step on the reset (the action is ignored, the reset observation comes back). Each env
is fed its own action list, one action per *real* step, so the raw records of env i, with the reset
steps taken out, are what the adapter must return for env i step by step: same observations (the
reset observation in place of the final one, which goes to ``terminal_observation``), rewards, dones,
truncation flags and episode statistics.
"""

from __future__ import annotations

import envpool
import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import DummyVecEnv

from plastic_rl import PlasticDQN, PlasticPPO
from plastic_rl.envs import (
    EnvPoolVecEnv,
    PermuteObservation,
    RewarmOnSwitch,
    TaskSequence,
    atari,
    atari_sequence,
    atari_tasks,
    classic_control,
    make_vec_env,
    mujoco,
    permuted_cartpole,
    permuted_tasks,
    physics_tasks,
)

from helpers import TinyImageEnv

pytestmark = pytest.mark.filterwarnings("ignore:.*precision lowered by casting")  # gymnasium on envpool's Box bounds


def raw_records(env_id: str, n: int, seed: int, actions: np.ndarray, **kwargs):
    """Step a raw envpool pool with its own auto-reset; per env, the records of its first ``len(actions)``
    real steps (reset steps removed): obs, reward, terminated, truncated, info reward and lives, and for a
    step that ended an episode the reset observation and lives that followed it."""
    steps = actions.shape[0]
    pool = envpool.make(env_id, env_type="gymnasium", num_envs=n, seed=seed, **kwargs)
    obs, info = pool.reset()
    first = (obs.copy(), info.get("lives"))
    records = [[] for _ in range(n)]
    ptr = np.zeros(n, dtype=int)
    resetting = np.zeros(n, dtype=bool)
    while (ptr < steps).any() or resetting.any():
        act = actions[np.minimum(ptr, steps - 1), np.arange(n)]
        obs, rew, term, trunc, info = pool.step(act)
        assert np.array_equal(info["env_id"], np.arange(n))
        for i in range(n):
            if resetting[i]:  # envpool's auto-reset step: action ignored, reset observation returned
                records[i][-1]["next_obs"] = obs[i].copy()
                records[i][-1]["next_lives"] = info["lives"][i] if "lives" in info else None
                resetting[i] = False
            elif ptr[i] < steps:
                lives = info["lives"][i] if "lives" in info else None
                raw = info["reward"][i] if "reward" in info else rew[i]
                records[i].append(dict(obs=obs[i].copy(), rew=rew[i], term=term[i], trunc=trunc[i], raw=raw, lives=lives))
                ptr[i] += 1
                resetting[i] = term[i] or trunc[i]
    pool.close()
    return first, records


def run_adapter(venv, actions: np.ndarray):
    first = venv.reset()
    out = []
    for t in range(actions.shape[0]):
        obs, rew, done, infos = venv.step(actions[t])
        out.append((obs.copy(), rew.copy(), done.copy(), infos))
    return first, out


def expected_episodes(records, episodic_life: bool, start_lives=None):
    """Per step of one env: (done, truncated flag, terminal obs or None, next obs, episode or None)."""
    expected, ret, length, lives = [], 0.0, 0, start_lives
    for r in records:
        ret += r["raw"]
        length += 1
        game_over = bool(r["term"] or r["trunc"])
        life_lost = episodic_life and r["lives"] < lives
        lives = r["lives"]
        done = game_over or life_lost
        episode = None
        if game_over:
            episode = (ret, length)
            ret, length = 0.0, 0
            lives = r["next_lives"]
        next_obs = r["next_obs"] if game_over else r["obs"]
        expected.append((done, bool(r["trunc"] and not r["term"]) if done else None, r["obs"] if done else None, next_obs, episode))
    return expected


def compare(first_raw, records, first, out, episodic_life=False, reward=lambda r: r["rew"], start_lives=None):
    n = len(records)
    np.testing.assert_array_equal(first, first_raw[0])
    counts = {"life": 0, "terminated": 0, "truncated": 0}
    for i in range(n):
        exp = expected_episodes(records[i], episodic_life, start_lives[i] if start_lives is not None else None)
        for t, (done, trunc_flag, terminal, next_obs, episode) in enumerate(exp):
            obs, rew, dones, infos = out[t]
            info = infos[i]
            assert rew[i] == pytest.approx(reward(records[i][t])), (i, t)
            assert bool(dones[i]) == done, (i, t)
            np.testing.assert_array_equal(obs[i], next_obs, err_msg=f"obs env {i} step {t}")
            if done:
                np.testing.assert_array_equal(info["terminal_observation"], terminal)
                assert info["TimeLimit.truncated"] == trunc_flag, (i, t)
            else:
                assert "terminal_observation" not in info and "TimeLimit.truncated" not in info
            if episode is None:
                assert "episode" not in info, (i, t)
                counts["life"] += done
            else:
                assert info["episode"]["r"] == pytest.approx(episode[0]) and info["episode"]["l"] == episode[1], (i, t)
                counts["truncated" if trunc_flag else "terminated"] += 1
    return counts


# --- the adapter against raw envpool ------------------------------------------------------------


def test_adapter_matches_raw_envpool_cartpole():
    n, steps = 4, 300
    actions = np.random.default_rng(1).integers(0, 2, (steps, n))
    first_raw, records = raw_records("CartPole-v1", n, 3, actions, max_episode_steps=25)
    venv = make_vec_env("CartPole-v1", n_envs=n, seed=3, max_episode_steps=25)
    assert isinstance(venv, EnvPoolVecEnv)
    first, out = run_adapter(venv, actions)
    counts = compare(first_raw, records, first, out)
    assert counts["terminated"] > 10 and counts["truncated"] > 0  # both kinds of episode end were checked


def test_adapter_matches_raw_envpool_atari_over_lives():
    """Asterix with random actions: lives lost, games over, games truncated and rewards of 50 points,
    compared step by step. The adapter does episodic life and reward clipping; the raw pool, the
    oracle, does neither."""
    n, steps = 2, 450
    actions = np.random.default_rng(0).integers(0, 9, (steps, n))
    first_raw, records = raw_records("Asterix-v5", n, 5, actions, max_episode_steps=250)
    venv = make_vec_env("Asterix-v5", n_envs=n, seed=5, max_episode_steps=250)  # ATARI_TRAIN defaults
    assert venv.episodic_life and venv.pool.config["reward_clip"] and not venv.pool.config["episodic_life"]
    first, out = run_adapter(venv, actions)
    counts = compare(first_raw, records, first, out, episodic_life=True, reward=lambda r: np.sign(r["raw"]), start_lives=first_raw[1])
    assert counts["life"] >= 4 and counts["terminated"] >= 1 and counts["truncated"] >= 1, counts
    assert max(abs(r["raw"]) for rec in records for r in rec) > 1  # raw rewards above 1 were clipped, scores are raw


def test_life_loss_continues_the_game():
    """After a life loss the adapter reports done but does not reset: lives go down, elapsed_step goes on."""
    venv = atari("Breakout", n_envs=1, seed=0)
    venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(400):
        before = venv.get_attr("elapsed_step")[0] if venv.last_info else 0
        obs, _, done, infos = venv.step(rng.integers(0, 4, 1))
        if done[0] and "episode" not in infos[0]:
            np.testing.assert_array_equal(obs[0], infos[0]["terminal_observation"])
            lives, elapsed = venv.get_attr("lives")[0], venv.get_attr("elapsed_step")[0]
            assert 0 < lives < 5 and elapsed == before + 1
            venv.step(rng.integers(0, 4, 1))
            assert venv.get_attr("lives")[0] == lives and venv.get_attr("elapsed_step")[0] == elapsed + 1
            return
    pytest.fail("no life lost in 400 random steps")


def test_cartpole_truncates_at_500_steps():
    venv = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    obs = venv.reset()
    for t in range(1, 501):  # noqa: B007 (t is read after the loop)
        obs, rew, done, infos = venv.step(np.array([int(obs[0, 2] + 0.5 * obs[0, 3] > 0)]))  # balances for 500+ steps
        if done[0]:
            break
    assert t == 500 and infos[0]["TimeLimit.truncated"] is True
    assert infos[0]["episode"]["r"] == 500.0 and infos[0]["episode"]["l"] == 500
    assert infos[0]["terminal_observation"].shape == (4,) and not np.array_equal(infos[0]["terminal_observation"], obs[0])


# --- seeding, attributes, errors ----------------------------------------------------------------


def trajectory(venv, steps=60):
    rng = np.random.default_rng(0)
    obs = [venv.reset()]
    for _ in range(steps):
        obs.append(venv.step(rng.integers(0, 2, venv.num_envs))[0])
    return np.stack(obs)


def test_seeding_is_reproducible():
    a = trajectory(make_vec_env("CartPole-v1", n_envs=3, seed=7))
    b = trajectory(make_vec_env("CartPole-v1", n_envs=3, seed=7))
    c = trajectory(make_vec_env("CartPole-v1", n_envs=3, seed=8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    venv = make_vec_env("CartPole-v1", n_envs=3, seed=8)
    trajectory(venv)
    assert venv.seed(7) == [7, 8, 9]  # applied at the next reset, like SB3's VecEnvs
    np.testing.assert_array_equal(trajectory(venv), a)
    assert np.array_equal(c[0, 1], a[0, 2])  # env i is seeded seed + i


def test_attributes_render_and_unsupported_calls():
    venv = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    venv.reset()
    assert venv.get_attr("max_episode_steps") == [500, 500] and venv.get_attr("elapsed_step") == [0, 0]
    assert venv.env_is_wrapped(Monitor) == [True, True] and venv.env_is_wrapped(gym.Wrapper) == [False, False]
    with pytest.raises(NotImplementedError, match="render_mode='rgb_array'"):
        venv.get_images()
    with pytest.raises(NotImplementedError, match="make_vec_env"):
        venv.set_attr("max_episode_steps", 10)
    with pytest.raises(AttributeError):
        venv.get_attr("no_such_attribute")
    rendered = make_vec_env("CartPole-v1", n_envs=2, seed=0, render_mode="rgb_array")
    rendered.reset()
    images = rendered.get_images()
    assert len(images) == 2 and images[0].shape == (400, 600, 3)


def test_make_vec_env_backends_and_errors():
    assert isinstance(make_vec_env("CartPole-v1", n_envs=2), EnvPoolVecEnv)
    assert isinstance(make_vec_env("CartPole-v1", n_envs=2, backend="gymnasium"), DummyVecEnv)
    gym_only = make_vec_env("Taxi-v4", n_envs=2)  # gymnasium has it, envpool does not
    assert isinstance(gym_only, DummyVecEnv) and gym_only.env_is_wrapped(Monitor) == [True, True]
    with pytest.raises(ValueError, match="Close matches: CartPole-v1"):
        make_vec_env("CartPol-v1")
    with pytest.raises(ValueError, match="Pong-v5"):
        make_vec_env("Pongg-v5")
    with pytest.raises(ValueError, match="accepted: auto, envpool, gymnasium"):
        make_vec_env("CartPole-v1", backend="ray")
    with pytest.raises(ValueError, match="not in envpool"):
        make_vec_env("Taxi-v4", backend="envpool")
    with pytest.raises(ValueError, match="n_envs"):
        make_vec_env("CartPole-v1", n_envs=0)


def test_an_unknown_id_names_close_matches_or_else_the_families():  # issue 22.13: "close" matches were random ids
    from plastic_rl.env_ids import envpool_ids
    from plastic_rl.envs.registry import close_matches

    with pytest.raises(ValueError) as info:
        make_vec_env("NotAnEnv-v9")
    message = str(info.value)
    assert "Close matches" not in message and "AdroitHandPen" not in message and "Robotank" not in message
    assert "No close match; the ids are in: classic control (e.g. CartPole-v1), Atari (e.g. Pong-v5), MuJoCo (e.g. " \
        "HalfCheetah-v4), MinAtar (e.g. plastic_rl/MinAtar-Breakout-v1); also " in message  # fmt: skip
    with pytest.raises(ValueError) as info:  # gymnasium's families only (and envpool stays unimported there)
        make_vec_env("NotAnEnv-v9", backend="gymnasium")
    import gymnasium

    # gymnasium's own families: Atari only where ale_py has registered its ids (an earlier import may have)
    has_atari = any(name.startswith("ALE/") for name in gymnasium.registry)
    assert "not in gymnasium's registry" in str(info.value) and ("Atari" in str(info.value)) == has_atari
    # envpool's ids alone: gymnasium's registry also holds ale_py's Pong-v4 etc. once anything imported ale_py
    pool = envpool_ids()
    assert close_matches("Pong-v4", ids=pool) == close_matches("pong", ids=pool) == close_matches("Pongg-v5", ids=pool) == ["Pong-v5"]
    assert close_matches("breakout-v5", ids=pool) == ["Breakout-v5"] and "Pong-v5" in close_matches("Pongg-v5")
    assert close_matches("CartPol-v1")[0] == "CartPole-v1"
    assert close_matches("NoSuchGame-v5") == [] and close_matches("MyEnv-v0") == []


def test_checkpoint_backend_is_the_recorded_one_else_sb3s_gymnasium():
    from plastic_rl.envs.registry import backend_of, checkpoint_backend

    assert checkpoint_backend("CartPole-v1", "envpool") == "envpool" and checkpoint_backend("CartPole-v1", "gymnasium") == "gymnasium"
    assert checkpoint_backend("CartPole-v1") == "gymnasium"  # SB3's zips record none: SB3 makes envs with gymnasium
    assert checkpoint_backend("Pong-v5") == "envpool"  # an envpool-only id: trained on plastic_rl.envs
    with pytest.raises(ValueError, match="not in envpool"):
        checkpoint_backend("Taxi-v4", "envpool")
    assert backend_of(make_vec_env("CartPole-v1", n_envs=1)) == "envpool"
    assert backend_of(make_vec_env("CartPole-v1", n_envs=1, backend="gymnasium")) == "gymnasium"
    assert backend_of(gym.make("CartPole-v1")) == "gymnasium" and backend_of(DummyVecEnv([TinyImageEnv])) is None


# --- presets ------------------------------------------------------------------------------------


def test_atari_preset_train_and_eval():
    train, evaluation = atari("pong", n_envs=1, seed=0), atari("Pong-v5", n_envs=1, seed=0, train=False)
    for venv in (train, evaluation):
        space = venv.observation_space
        assert space.shape == (4, 84, 84) and space.dtype == np.uint8
        assert is_image_space(space) and is_image_space_channels_first(space)  # CnnPolicy takes it as it is
    assert train.episodic_life and train.pool.config["reward_clip"]
    assert not evaluation.episodic_life and not evaluation.pool.config["reward_clip"]
    with pytest.raises(ValueError, match="Pong-v5"):
        atari("Pongg")


def test_classic_control_and_mujoco_presets():
    venv = classic_control("Pendulum-v1", n_envs=2)
    venv.reset()
    venv.step(np.zeros((2, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="accepted: CartPole-v1"):
        classic_control("Pong-v5")
    hopper = mujoco("Hopper-v4", n_envs=2, seed=0)
    assert hopper.action_space.shape == (3,)
    hopper.reset()
    obs, rew, done, _ = hopper.step(np.zeros((2, 3), dtype=np.float32))  # SB3 sends float32 actions
    assert obs.shape == (2, 11) and rew.dtype == np.float32
    with pytest.raises(ValueError, match="Close matches: Hopper-v4"):
        mujoco("Hoper-v4")


# --- TaskSequence -------------------------------------------------------------------------------


def test_task_sequence_switches_at_the_right_step_and_announces_it():
    seq = TaskSequence(permuted_tasks("CartPole-v1", 3), switch_every=24, n_envs=4, seed=0)
    seq.reset()
    seen = []
    for step in range(1, 19):  # 72 env steps: switches after 24 and 48, then back to task 0 at 72
        obs, rew, done, infos = seq.step(np.zeros(4, dtype=np.int64))
        if "task_switch" in infos[0]:
            assert all(info["task_switch"] == seq.task_index for info in infos)
            assert done.all() and all("terminal_observation" in info for info in infos)
            seen.append((step, seq.task_index))
        else:
            assert not any("task_switch" in info for info in infos)
    assert seen == [(6, 1), (12, 2), (18, 0)] and seq.switches == [24, 48, 72] and seq.num_timesteps == 72
    seq.seek(50)
    assert seq.task_index == 2 and seq.switches == [24, 48]
    seq.set_task(1)
    assert seq.task_index == 1 and seq.switches == [24, 48] and seq.num_timesteps == 50


def test_sequence_factories_follow_the_factory_convention():
    """factory(env_id, n_envs=, seed=, **kwargs), as the training config names them; the tasks do not
    depend on the env seed, so an evaluation env sees the same permutations."""
    train = permuted_cartpole("CartPole-v1", n_envs=2, seed=0, n_tasks=3, switch_every=8, rewarm_on_switch=False)
    evaluation = permuted_cartpole("CartPole-v1", n_envs=1, seed=10_000, n_tasks=3, switch_every=8)
    assert isinstance(train, TaskSequence) and not train.rewarm_on_switch and evaluation.rewarm_on_switch
    assert train.tasks[0].perm.tolist() == [0, 1, 2, 3]
    assert [t.perm.tolist() for t in train.tasks] == [t.perm.tolist() for t in evaluation.tasks]
    assert len({tuple(t.perm) for t in train.tasks}) == 3


def test_task_sequence_counts_env_steps_when_not_a_multiple():
    seq = TaskSequence(["CartPole-v1", "CartPole-v1"], switch_every=10, n_envs=4)
    seq.reset()
    for _ in range(8):
        seq.step(np.zeros(4, dtype=np.int64))
    assert seq.switches == [12, 20, 32]


def test_task_sequence_permutes_observations():
    plain = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    perm = PermuteObservation(make_vec_env("CartPole-v1", n_envs=2, seed=0), [2, 0, 3, 1])
    np.testing.assert_array_equal(perm.reset(), plain.reset()[:, [2, 0, 3, 1]])
    for _ in range(30):
        a = np.ones(2, dtype=np.int64)
        (po, _, pd, pi), (o, _, d, i) = perm.step(a), plain.step(a)
        np.testing.assert_array_equal(po, o[:, [2, 0, 3, 1]])
        np.testing.assert_array_equal(pd, d)
        for k in np.flatnonzero(d):
            np.testing.assert_array_equal(pi[k]["terminal_observation"], i[k]["terminal_observation"][[2, 0, 3, 1]])


def test_task_sequence_space_mismatch_is_named():
    with pytest.raises(ValueError, match=r"task 1 \('Acrobot-v1'\) has observation_space"):
        TaskSequence(["CartPole-v1", "Acrobot-v1"], switch_every=8, n_envs=2)
    with pytest.raises(ValueError, match="switch_every"):
        TaskSequence(["CartPole-v1"], switch_every=1, n_envs=2)


def test_task_sequence_of_atari_games_and_physics():
    seq = atari_sequence("Pong,Breakout", n_envs=1, switch_every=4)
    assert seq.action_space == gym.spaces.Discrete(18) and seq.observation_space.shape == (4, 84, 84)
    seq.reset()
    for _ in range(4):
        _, _, done, infos = seq.step(np.zeros(1, dtype=np.int64))
    assert seq.task_name == "Breakout-v5" and infos[0]["task_switch"] == 1 and done[0]
    assert seq.tasks[1].episodic_life and not atari_tasks(["Pong"], train=False)[0]["episodic_life"]
    physics = TaskSequence(physics_tasks(), switch_every=4, n_envs=2)
    assert physics.tasks[1].get_attr("length") == [1.0, 1.0]
    # the record agents save for diagnose: the first task's id and the backend that made it
    assert (seq.env_id, seq.env_backend) == ("Pong-v5", "envpool")
    assert (physics.env_id, physics.env_backend) == ("CartPole-v1", "gymnasium")
    permuted = TaskSequence(permuted_tasks("CartPole-v1", 2), switch_every=4, n_envs=2, backend="envpool")
    assert permuted.env_backend == "envpool" == PlasticPPO("MlpPolicy", permuted, n_steps=8, batch_size=16).env_backend


def test_rewarm_on_switch_with_plastic_ppo():
    """PlasticPPO on a TaskSequence: the callback re-warms at each switch, follows the env's
    rewarm_on_switch, and leaves an agent without a re-warm schedule alone (with a warning)."""
    seq = permuted_cartpole(n_envs=4, n_tasks=2, switch_every=64, rewarm_on_switch=True)
    model = PlasticPPO("MlpPolicy", seq, n_steps=32, batch_size=64, n_epochs=1, seed=0, plasticity="elr")
    calls = []
    rewarm = model.plasticity.rewarm
    model.plasticity.rewarm = lambda: (calls.append(model.num_timesteps), rewarm())
    callback = RewarmOnSwitch()
    model.learn(256, callback=callback)
    assert callback.switches == [64, 128, 192, 256] == seq.switches == calls == callback.rewarms
    seq.rewarm_on_switch = False
    quiet = RewarmOnSwitch()
    model.learn(128, callback=quiet, reset_num_timesteps=False)  # one rollout: 32 steps x 4 envs
    assert quiet.switches == [320, 384] and quiet.rewarms == [] and len(calls) == 4
    baseline = PlasticPPO("MlpPolicy", seq, n_steps=32, batch_size=64, n_epochs=1, seed=0, plasticity="none")
    with pytest.warns(UserWarning, match="nothing to re-warm"):
        baseline.learn(64, callback=RewarmOnSwitch(enabled=True))
    with pytest.raises(TypeError, match="plastic_rl agent"):
        PPO("MlpPolicy", seq, n_steps=32, batch_size=64).learn(64, callback=RewarmOnSwitch())


@pytest.mark.parametrize("kind", ["redo", "shrink-perturb", "reset"])
def test_on_task_switch_intervenes_at_every_switch(kind):
    from plastic_rl.envs import OnTaskSwitch

    seq = permuted_cartpole(n_envs=4, n_tasks=2, switch_every=64)
    model = PlasticDQN("MlpPolicy", seq, learning_starts=16, train_freq=4, buffer_size=500, seed=0,
                       plasticity={"preset": kind, "every": 0, "redo_tau": 0.5})  # fmt: skip
    callback = OnTaskSwitch(rewarm=False, intervene=True)
    model.learn(256, callback=callback)
    assert callback.switches == [64, 128, 192, 256] == callback.interventions
    assert model.plasticity.interventions == 4 and callback.rewarms == []
    combined = OnTaskSwitch(intervene=True)  # re-warm (the env's default) and intervene together
    elr = PlasticDQN("MlpPolicy", seq, learning_starts=16, train_freq=4, buffer_size=500, seed=0,
                     plasticity={"preset": "elr", "schedule": "on-demand", "intervention": kind})  # fmt: skip
    elr.learn(128, callback=combined)
    assert combined.rewarms == combined.interventions == combined.switches == [64, 128]  # this agent's own steps
    with pytest.warns(UserWarning, match="has no intervention"):
        PlasticDQN("MlpPolicy", seq, learning_starts=16, plasticity="elr").learn(64, callback=OnTaskSwitch(intervene=True))


def test_a_fresh_buffer_at_each_switch_empties_it_and_waits_learning_starts(tmp_path):
    """OnTaskSwitch(fresh_buffer=True): at a switch the replay buffer holds nothing of the old task and the
    agent takes no gradient step for learning_starts env steps, as a new agent; saved, resumed, refused for PPO."""
    from plastic_rl.envs import OnTaskSwitch

    class Updates(OnTaskSwitch):
        def __init__(self):
            super().__init__(rewarm=False, fresh_buffer=True)
            self.updates = {}

        def _on_step(self):
            result = super()._on_step()
            self.updates[self.num_timesteps] = self.model._n_updates
            return result

    seq = permuted_cartpole(n_envs=1, n_tasks=2, switch_every=100)
    model = PlasticDQN("MlpPolicy", seq, learning_starts=20, train_freq=1, buffer_size=1000, seed=0, plasticity="none")
    callback = Updates()
    model.learn(150, callback=callback)
    assert callback.switches == [100] and model.learning_starts == 120 and model.learning_starts_per_task == 20
    assert model.replay_buffer.size() == 150 - 100 + 1  # the switch step's transition and the 50 after it
    n = callback.updates  # seen while collecting a step: the gradient steps taken after the steps before it
    assert n[22] > n[21] == 0 and n[100] == n[121] and n[122] > n[121]  # trains after 20, then none from the switch to 120
    model.save(tmp_path / "m.zip")
    assert PlasticDQN.load(tmp_path / "m.zip").learning_starts_per_task == 20  # a resumed run keeps the first value
    with pytest.raises(ValueError, match=r"OnTaskSwitch\(fresh_buffer=True\) needs an off-policy agent .*PlasticPPO has none"):
        PlasticPPO("MlpPolicy", seq, n_steps=32, batch_size=32).learn(32, callback=OnTaskSwitch(fresh_buffer=True))


class RecordFactor(RewarmOnSwitch):
    """RewarmOnSwitch that also records (num_timesteps, lr factor) at the start of every rollout."""

    def __init__(self):
        super().__init__()
        self.factors = []

    def _on_rollout_start(self) -> None:
        self.factors.append((self.model.num_timesteps, self.model.plasticity.lr_factor))


def test_on_demand_schedule_rewarms_only_at_task_switches():
    seq = permuted_cartpole(n_envs=4, n_tasks=2, switch_every=256, rewarm_on_switch=True)
    plasticity = {"schedule": "on-demand", "warmup": 4, "decay": 8}
    model = PlasticPPO("MlpPolicy", seq, n_steps=32, batch_size=64, n_epochs=1, seed=0, plasticity=plasticity)
    callback = RecordFactor()
    model.learn(512, callback=callback)
    assert callback.switches == [256, 512]
    assert [t for t, _ in callback.factors] == [0, 128, 256, 384]  # rollouts of 32 steps x 4 envs
    factors = [f for _, f in callback.factors]
    assert factors[:2] == [1.0, 1.0]  # idle: exactly the agent's own lr until the first switch
    # Re-warmed at the switch (step 256), then 2 gradient steps per rollout: 2 and 4 steps into the
    # warm-up from 1 to the peak 2 over 4 steps.
    assert factors[2:] == [pytest.approx(1.75), pytest.approx(2.0)]


# --- SB3 trains on it ---------------------------------------------------------------------------


def test_ppo_trains_on_the_adapter_cartpole():
    venv = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(512)
    assert model.num_timesteps == 512 and len(model.ep_info_buffer) > 5
    mean, _ = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=2, seed=1), n_eval_episodes=2, warn=False)
    assert mean > 0


def test_ppo_cnn_trains_on_atari():
    venv = atari("Breakout", n_envs=2, seed=0)
    model = PPO("CnnPolicy", venv, n_steps=128, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(256)
    assert model.num_timesteps == 256


def test_the_fresh_buffer_example_in_docs_envs_runs():
    """docs/envs.md's OnTaskSwitch(fresh_buffer=True) example (its asserts are the known answers)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "envs.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "fresh_buffer=True" in b]
    assert len(blocks) == 1
    exec(compile(blocks[0], "docs/envs.md", "exec"), {})
