"""The reference validators (tools/grokking.py, tools/warm_start.py) with tiny budgets.

Each arm runs end to end and writes its files; the data splits are exact; the tools go through the
core (``ELR.step`` patched with a counting wrapper is called); bad input gives a one-line error.
"""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from plastic_rl.elr import ELR, OnDemandRewarm
from plastic_rl.tools import grokking, warm_start
from plastic_rl.tools._validate import parse_seeds

ROOT = Path(__file__).resolve().parents[1]

GROK_TINY = [
    "--p",
    "11",
    "--rho",
    "0.5",
    "--steps",
    "40",
    "--eval-every",
    "10",
    "--diag-every",
    "20",
    "--embed",
    "8",
    "--hidden",
    "16",
    "--seeds",
    "0",
    "--quiet",
]
WARM_TINY = ["--epochs", "2", "--batch", "500", "--hidden", "16", "--seeds", "0", "--quiet"]


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture()
def count_elr_steps(monkeypatch):
    """Patch the core's ELR.step with a wrapper that counts calls (and still does the real work)."""
    calls = []
    real = ELR.step

    def wrapper(self, *args, **kwargs):
        calls.append(self)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ELR, "step", wrapper)
    return calls


# --------------------------------------------------------------------------------------------
# Grokking
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p,rho", [(3, 0.5), (11, 0.3), (23, 0.2), (97, 0.3)])
def test_grokking_split_is_exact(p, rho):
    s = grokking.make_split(p, rho, seed=1)
    both = torch.cat([s.train_idx, s.test_idx])
    assert sorted(both.tolist()) == list(range(p * p))  # complete, and disjoint (no index twice)
    assert len(s.train_idx) == round(rho * p * p)
    train_pairs = {tuple(r) for r in s.train_x.tolist()}
    test_pairs = {tuple(r) for r in s.test_x.tolist()}
    assert not train_pairs & test_pairs  # no test example in training
    assert len(train_pairs | test_pairs) == p * p
    for x, y in ((s.train_x, s.train_y), (s.test_x, s.test_y)):
        assert torch.equal(y, (x[:, 0] + x[:, 1]) % p)
        assert torch.equal(x[:, 0] * p + x[:, 1], s.train_idx if x is s.train_x else s.test_idx)
    # same seed, same split (every arm of a seed sees the same data); another seed, another split
    assert torch.equal(grokking.make_split(p, rho, seed=1).train_idx, s.train_idx)
    if p > 3:
        assert not torch.equal(grokking.make_split(p, rho, seed=2).train_idx, s.train_idx)


def test_grokking_every_arm_runs_and_writes(tmp_path, count_elr_steps):
    out = tmp_path / "g"
    assert grokking.main(GROK_TINY + ["--out", str(out)]) == 0
    for name in ("curves.csv", "summary.csv", "summary.md", "curves.png"):
        assert (out / name).stat().st_size > 0, name
    summary = read_csv(out / "summary.csv")
    assert [r["arm"] for r in summary] == list(grokking.ARMS)
    curves = read_csv(out / "curves.csv")
    for arm in grokking.ARMS:
        rows = [r for r in curves if r["arm"] == arm]
        assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
        assert all(r["elr/net.0"] and r["param_norm/net.2"] for r in rows)
        assert rows[-1]["dormant_ratio"] != ""
    # the core's ELR.step ran once per optimizer step of every arm
    assert len(count_elr_steps) == 40 * len(grokking.ARMS)
    assert "steps to 90%" in (out / "summary.md").read_text()


def test_grokking_projection_and_schedules_come_from_the_core(tmp_path, count_elr_steps):
    """nap/elr/late-elr keep the hidden layer at its initial norm; elr's lr follows the warm-up."""
    out = tmp_path / "g"
    grokking.main(GROK_TINY + ["--out", str(out), "--arms", "nap,elr,late-elr", "--warmup", "10", "--low-lr", "2e-4"])
    curves = read_csv(out / "curves.csv")
    assert len({id(e) for e in count_elr_steps}) == 3
    for e in {id(e): e for e in count_elr_steps}.values():
        assert "net.0" in e.projected_names and "net.2" not in e.projected_names
    norms = [float(r["param_norm/net.0"]) for r in curves if r["arm"] == "elr"]
    assert max(norms) == pytest.approx(min(norms), rel=1e-5)  # projected: pinned at the initial norm
    lr = {(r["arm"], int(r["step"])): float(r["lr"]) for r in curves}
    assert lr["nap", 40] == pytest.approx(1e-3)
    assert lr["late-elr", 10] == pytest.approx(2e-4)  # low lr before the late re-warm (--late-at 0.5)
    assert lr["late-elr", 30] > 1e-3  # re-warmed
    assert lr["elr", 10] == pytest.approx(1e-2, rel=0.1)  # end of the warm-up: the peak


def test_grokking_matched_controls_share_the_lr(tmp_path):
    """baseline+schedule follows elr's lr at every logged step; nap and baseline share one constant lr."""
    out = tmp_path / "g"
    grokking.main(GROK_TINY + ["--out", str(out), "--arms", "baseline,baseline+schedule,nap,elr", "--warmup", "10"])
    curves = read_csv(out / "curves.csv")
    lr = {arm: [float(r["lr"]) for r in curves if r["arm"] == arm] for arm in ("baseline", "baseline+schedule", "nap", "elr")}
    assert lr["baseline+schedule"] == lr["elr"] and len(set(lr["elr"])) > 1
    assert lr["baseline"] == lr["nap"] == [1e-3] * 4
    summary = {r["arm"]: r for r in read_csv(out / "summary.csv")}
    assert float(summary["elr"]["nominal_lr"]) == float(summary["baseline+schedule"]["nominal_lr"]) == 1e-2  # the peak
    text = (out / "summary.md").read_text()
    assert "`elr` vs `baseline+schedule` | same schedule | 0.01" in text
    assert "`nap` vs `baseline` | same constant lr | 0.001" in text
    assert "`elr` vs `baseline` " not in text  # never a speed-up across lrs


def test_grokking_at_lr_keeps_the_schedule_shape():
    cfg = grokking.parse_args(["--quiet"])
    same = grokking.at_lr(cfg, "elr", cfg.peak_lr)
    assert vars(same) == vars(cfg)  # the sweep's elr at the default peak is the default elr, bit for bit
    low = grokking.at_lr(cfg, "baseline+schedule", 1e-3)
    assert low.peak_lr == 1e-3 and low.floor_lr == pytest.approx(1e-4) and low.lr == pytest.approx(1e-4)
    assert grokking.at_lr(cfg, "nap", 3e-2).lr == 3e-2 and cfg.lr == 1e-3  # a copy: cfg untouched


def test_elr_window_on_a_hand_made_curve():
    """Mean of the per-step ELR up to the first logged step at >= 50% test accuracy; the whole run if none."""
    elr = [float(i) for i in range(1, 61)]  # step i has ELR i
    steps = [10, 20, 30, 40, 50, 60]
    assert grokking.elr_window(elr, steps, [0.0, 0.1, 0.49, 0.5, 0.2, 0.95]) == (20.5, 40)  # mean of 1..40
    assert grokking.elr_window(elr, steps, [0.9, 1, 1, 1, 1, 1]) == (5.5, 10)  # first log already there
    assert grokking.elr_window(elr, steps, [0.0] * 6) == (30.5, 60)  # never: the whole budget
    assert grokking.elr_window(elr[:30], steps[:3], [0.0, 0.2, 0.6]) == (15.5, 30)  # a run stopped at step 30
    with pytest.raises(ValueError, match="no per-step ELR"):
        grokking.elr_window([], steps, [0.6] * 6)


def test_spearman_ranks_runs_not_within_budget_last():
    runs = [
        {"arm": "baseline", "elr_window": e, "steps_to_90": t}
        for e, t in ((1e-3, None), (2e-3, None), (3e-3, 900), (4e-3, 500), (5e-3, 300))
    ]
    r = grokking.spearman(runs, budget=1000)
    assert r["n"] == 5 and r["censored"] == 2 and r["rho"] == pytest.approx(-0.9747, abs=1e-3)  # ties averaged
    assert grokking.spearman(runs, 1000, censored=False)["rho"] == pytest.approx(-1.0)
    flat = grokking.spearman([dict(x, steps_to_90=None) for x in runs], 1000)
    assert flat["censored"] == 5 and flat["rho"] != flat["rho"]  # nan: every run tied


def test_grokking_sweep_end_to_end(tmp_path, count_elr_steps):
    out = tmp_path / "s"
    assert grokking.main(GROK_TINY + ["--out", str(out), "--sweep", "--lrs", "1e-2,3e-2", "--seeds", "0,1"]) == 0
    for name in ("curves.csv", "sweep.csv", "sweep.md", "elr_scatter.png"):
        assert (out / name).stat().st_size > 0, name
    runs = read_csv(out / "sweep.csv")
    assert sorted((r["arm"], float(r["nominal_lr"]), int(r["seed"])) for r in runs) == sorted(
        (a, lr, s) for a in grokking.SWEEP_ARMS for lr in (1e-2, 3e-2) for s in (0, 1)
    )
    assert all(float(r["elr_window"]) > 0 and r["elr_layer"] == "net.0" for r in runs)
    assert len(count_elr_steps) == 40 * len(runs)
    text = (out / "sweep.md").read_text()
    assert "Spearman" in text and "| all runs | 16 |" in text and "Measured ELR of the hidden layer `net.0`" in text
    assert "rho, steps 1..40" in text  # no run reached 50%: the fixed window is the whole budget
    assert all(r["elr_fixed"] == r["elr_window"] for r in runs)  # ...and so is the window to 50%


def test_fixed_window_from_interval_means():
    rows = [{"step": 10, "m": 1.0}, {"step": 20, "m": 3.0}, {"step": 25, "m": 5.0}]  # the last interval is 5 steps
    assert grokking.interval_mean(rows, "m", 20) == 2.0
    assert grokking.interval_mean(rows, "m", 25) == pytest.approx((10 + 30 + 25) / 25)
    with pytest.raises(ValueError, match="end=15"):
        grokking.interval_mean(rows, "m", 15)
    runs = [
        {"arm": "a", "nominal_lr": 1.0, "seed": 0, "steps_to_50": 20, "elr_layer": "x"},
        {"arm": "b", "nominal_lr": 1.0, "seed": 0, "steps_to_50": None, "elr_layer": "x"},
    ]
    curves = [
        {"arm": a, "nominal_lr": 1.0, "seed": 0, "step": t, "elr_mean/x": v}
        for a, vs in (("a", (4.0, 2.0)), ("b", (1.0, 1.0, 1.0)))
        for t, v in zip((10, 20, 30), vs)
    ]
    assert grokking.add_fixed_window(runs, curves, budget=30) == 20  # the earliest 50% step of any run
    assert [(r["elr_fixed"], r["fixed_steps"]) for r in runs] == [(3.0, 20), (1.0, 20)]


def test_grokking_sweep_stops_at_90(tmp_path, monkeypatch):
    monkeypatch.setattr(grokking, "evaluate", lambda model, x, y: (0.1, 1.0))  # every logged step: 100%
    out = tmp_path / "s"
    grokking.main(GROK_TINY + ["--out", str(out), "--sweep", "--lrs", "1e-2", "--arms", "baseline,elr"])
    runs = read_csv(out / "sweep.csv")
    assert [(r["steps_to_90"], r["last_step"], r["window_steps"]) for r in runs] == [("10", "10", "10")] * 2


def test_grokking_transformer_runs(tmp_path, count_elr_steps):
    out = tmp_path / "t"
    args = [
        "--model",
        "transformer",
        "--p",
        "7",
        "--rho",
        "0.5",
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--diag-every",
        "6",
        "--embed",
        "16",
        "--seeds",
        "0",
        "--quiet",
        "--out",
        str(out),
    ]
    assert grokking.main(args) == 0
    assert (out / "curves.png").stat().st_size > 0
    projected = {n for e in count_elr_steps for n in e.projected_names}
    assert "blocks.0.attn.qkv" in projected and "unembed" not in projected
    assert len(count_elr_steps) == 6 * len(grokking.ARMS)


# --------------------------------------------------------------------------------------------
# Warm-starting
# --------------------------------------------------------------------------------------------


def test_mnist1d_is_generated_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the validator tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    warm_start._CACHE.clear()
    data = warm_start.mnist1d_data()
    assert data.x.shape == (4000, 40) and data.x_test.shape == (1000, 40)
    assert sorted(set(data.y.tolist())) == list(range(10))


def test_warm_start_split_is_exact():
    data = warm_start.mnist1d_data()
    train = {tuple(r) for r in data.x.numpy().round(6).tolist()}
    test = {tuple(r) for r in data.x_test.numpy().round(6).tolist()}
    assert len(train) == len(data.x) and not train & test  # no test example in training
    for fraction in (0.1, 0.5):
        idx = warm_start.subset(len(data.x), fraction, seed=3)
        assert len(idx) == round(fraction * len(data.x)) and len(set(idx.tolist())) == len(idx)
        assert 0 <= int(idx.min()) and int(idx.max()) < len(data.x)  # phase 1 draws from the training set only
        assert torch.equal(idx, warm_start.subset(len(data.x), fraction, seed=3))


def test_warm_start_every_arm_runs_and_writes(tmp_path, count_elr_steps):
    out = tmp_path / "w"
    assert warm_start.main(WARM_TINY + ["--out", str(out)]) == 0
    for name in ("curves.csv", "summary.csv", "summary.md", "curves.png", "features.png"):
        assert (out / name).stat().st_size > 0, name
    summary = read_csv(out / "summary.csv")
    assert [r["arm"] for r in summary] == list(warm_start.ARMS)
    curves = read_csv(out / "curves.csv")
    steps_per_phase = 2 * 8  # 2 epochs of ceil(4000 / 500) steps
    for arm in warm_start.ARMS:
        rows = [r for r in curves if r["arm"] == arm]
        warm = arm.startswith("warm")
        assert len(rows) == (4 if warm else 2)
        after = [r for r in rows if r["phase"] == "phase2"]
        assert all(r["delta_c"] != "" and r["delta_a"] != "" for r in after)
    warm_arms = sum(a.startswith("warm") for a in warm_start.ARMS)
    assert len(count_elr_steps) == steps_per_phase * (len(warm_start.ARMS) + warm_arms)
    text = (out / "summary.md").read_text()
    assert "gap closed vs fresh+elr" in text and "warm+elr closes" in text


def test_warm_start_recipes_use_the_core(tmp_path, count_elr_steps):
    out = tmp_path / "w"
    warm_start.main(WARM_TINY + ["--out", str(out), "--arms", "warm,warm+elr,warm+project,warm+rewarm"])
    by_id = {id(e): e for e in count_elr_steps}
    projects = sorted(e.project for e in by_id.values())
    assert projects == [False, False, True, True]
    rewarmed = [e for e in by_id.values() if isinstance(e.schedule, OnDemandRewarm)]
    assert len(rewarmed) == 2 and all(e.schedule.started for e in rewarmed)
    curves = read_csv(out / "curves.csv")
    lr = {(r["arm"], r["phase"], int(r["phase_step"])): float(r["lr"]) for r in curves}
    assert lr["warm+elr", "phase1", 16] == pytest.approx(1e-3)  # idle before the data change
    assert lr["warm+elr", "phase2", 8] > 2e-3  # re-warmed after it
    assert lr["warm", "phase2", 8] == pytest.approx(1e-3)


def test_warm_start_interventions_are_the_cores(tmp_path, monkeypatch):
    from plastic_rl import interventions

    calls = []
    for name in ("redo", "shrink_perturb"):
        original = getattr(interventions, name)
        monkeypatch.setattr(interventions, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    warm_start.main(WARM_TINY + ["--out", str(tmp_path / "w"), "--arms", "warm+redo,warm+shrink-perturb", "--seeds", "0"])
    assert sorted(calls) == ["redo", "shrink_perturb"]  # once each, at the data change


def test_warm_start_sweep_runs_constant_lrs(tmp_path):
    out = tmp_path / "w"
    assert warm_start.main(WARM_TINY + ["--out", str(out), "--sweep", "--lrs", "1e-3,1e-2"]) == 0
    for name in ("curves.csv", "sweep.csv", "sweep.md", "sweep.png"):
        assert (out / name).stat().st_size > 0, name
    runs = {(r["arm"], float(r["base_lr"])) for r in read_csv(out / "sweep.csv")}
    assert runs == {("fresh", 1e-3), ("fresh", 1e-2), ("warm", 1e-3), ("warm", 1e-2), ("warm+elr", 1e-3), ("fresh+elr", 1e-3)}
    for r in read_csv(out / "curves.csv"):
        if r["arm"] in ("fresh", "warm"):
            assert float(r["lr"]) == float(r["base_lr"])  # constant, both phases
    text = (out / "sweep.md").read_text()
    assert "| warm | 0.01 |" in text and "across the data change" in text


def test_elr_across_change_windows():
    rows = [
        {"seed": s, "phase": ph, "elr_mean/0": v, "param_norm/0": 10 * v}
        for s in (0, 1)
        for ph, vs in (("phase1", (1, 2, 3)), ("phase2", (9, 5, 4)))
        for v in vs
    ]
    e = warm_start.elr_across_change(rows, "0", k=2)
    assert (e["elr_before"], e["elr_after"], e["elr_end"]) == (2.5, 7.0, 4.5)
    assert (e["norm_before"], e["norm_end"]) == (30, 40)
    fresh = warm_start.elr_across_change([r for r in rows if r["phase"] == "phase2"], "0", k=1)
    assert fresh["elr_before"] != fresh["elr_before"] and fresh["elr_after"] == 9  # nan: no phase 1


def test_warm_start_reads_a_local_cifar10_copy(tmp_path):
    """--data: the python-format batches (pickled dicts with b"data" uint8 (n, 3072) and b"labels")."""
    import pickle

    import numpy as np

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1", 40), ("data_batch_2", 40), ("test_batch", 20)):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    args = warm_start.parse_args(["--data", str(folder), "--n-train", "60"])
    data = warm_start.load_data(args)
    assert data.x.shape == (60, 3072) and data.x_test.shape == (20, 3072)
    out = tmp_path / "w"
    assert (
        warm_start.main(
            [
                "--data",
                str(folder),
                "--epochs",
                "1",
                "--batch",
                "30",
                "--hidden",
                "8",
                "--seeds",
                "0",
                "--arms",
                "fresh,warm+elr",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "CIFAR-10" in (out / "summary.md").read_text()


# --------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2, no traceback
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module,args,words",
    [
        ("grokking", ["--p", "2"], ["--p 2", ">= 3"]),
        ("grokking", ["--rho", "0"], ["--rho 0", "(0, 1)"]),
        ("grokking", ["--rho", "1.5"], ["--rho 1.5", "(0, 1)"]),
        ("grokking", ["--arms", "baseline,fast"], ["'fast'", "baseline, baseline+schedule, nap, elr, late-elr"]),
        ("grokking", ["--sweep", "--lrs", "1e-3,x"], ["--lrs '1e-3,x'", "numbers > 0"]),
        ("grokking", ["--sweep", "--lrs", "0,1e-2"], ["--lrs '0,1e-2'", "numbers > 0"]),
        ("warm_start", ["--sweep", "--lrs", "1e-3,inf"], ["--lrs '1e-3,inf'", "numbers > 0"]),
        ("grokking", ["--model", "cnn"], ["'cnn'", "mlp, transformer"]),
        ("warm_start", ["--arms", "warm+magic"], ["'warm+magic'", "fresh, warm,"]),
        ("warm_start", ["--data", "/nonexistent/cifar"], ["/nonexistent/cifar", "cifar-10-batches-py"]),
        ("warm_start", ["--fraction", "1"], ["--fraction 1", "(0, 1)"]),
        ("warm_start", ["--seeds", "x"], ["'x'", "0,1,2"]),
    ],
)
def test_bad_input_is_one_line(module, args, words, capsys):
    mod = {"grokking": grokking, "warm_start": warm_start}[module]
    with pytest.raises(SystemExit) as exc:
        mod.parse_args(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    message = err[-1]
    assert "error:" in message and "Traceback" not in "\n".join(err)
    for w in words:
        assert w in message, (w, message)


@pytest.mark.slow
def test_bad_input_from_the_command_line():
    """The real entry point: stderr is usage + one error line, exit code 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "plastic_rl.tools.grokking", "--p", "1"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and lines[-1].endswith("the modulus must be an int >= 3")


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5") == [5]
    for bad in ("", "a", "3-1", "-1"):
        with pytest.raises(ValueError):
            parse_seeds(bad)
