"""A runnable tour of the core: ``python -m plastic_rl.tools.core_demo [key=value ...]``.

A student MLP regresses onto a random teacher network, and the teacher is replaced every
``steps_per_task`` steps. Two arms see the same batches: plain Adam, and the ELR recipe (normalize
with ``insert_norm``, project with ``ELR``, re-warm the lr when a CUSUM detector sees the loss jump).
It prints the ELR, parameter norms, the CUSUM alarms and the diagnostics as training goes; settings
live in ``configs/demo.yaml`` and take Hydra overrides (``tasks=5 norm=rms``).
"""

from __future__ import annotations

import sys
import time

import torch
from omegaconf import DictConfig
from torch import nn

from plastic_rl import diagnostics
from plastic_rl.elr import ELR, CusumRewarm
from plastic_rl.norm import insert_norm
from plastic_rl.tools.config import load_config


def mlp(cfg: DictConfig, out: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(cfg.input_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, out)
    )


def teacher(cfg: DictConfig, seed: int) -> nn.Module:
    torch.manual_seed(10_000 + seed)
    net = nn.Sequential(nn.Linear(cfg.input_dim, 64), nn.Tanh(), nn.Linear(64, 1))
    return net.requires_grad_(False)


def run(cfg: DictConfig) -> dict[str, dict[str, float]]:
    torch.manual_seed(cfg.seed)
    plain = mlp(cfg)
    normalized = insert_norm(mlp(cfg), kind=cfg.norm)
    arms = {"adam": (plain, torch.optim.Adam(plain.parameters(), lr=cfg.lr), None)}
    opt = torch.optim.Adam(normalized.parameters(), lr=cfg.lr)
    schedule = CusumRewarm(**cfg.cusum)
    arms["elr"] = (normalized, opt, ELR(normalized, opt, schedule=schedule))  # type: ignore[assignment]
    probe = torch.randn(512, cfg.input_dim, generator=torch.Generator().manual_seed(cfg.seed))
    data = torch.Generator().manual_seed(cfg.seed + 1)
    results: dict[str, dict[str, float]] = {}
    print(f"{'step':>6} {'arm':<5} {'loss':>8} {'|W0,b0|':>8} {'elr/0':>9} {'lr x':>5} {'dormant':>8} {'srank':>6}")
    for task in range(cfg.tasks):
        target = teacher(cfg, task)
        for t in range(cfg.steps_per_task):
            step = task * cfg.steps_per_task + t + 1
            x = torch.randn(cfg.batch_size, cfg.input_dim, generator=data)
            y = target(x)
            for name, (net, optimizer, elr) in arms.items():
                loss = nn.functional.mse_loss(net(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if elr is not None:
                    elr.step(loss=loss.item())
                if step % cfg.log_every == 0:
                    diag = diagnostics.measure(net, probe)
                    w0 = diag["weight_norm/0"]  # weight and bias jointly: what ELR projects
                    rate = f"{elr.metrics()['elr/0']:.2e}" if elr is not None else "-"
                    factor = f"{elr.metrics()['lr_factor']:.2f}" if elr is not None else "-"
                    print(
                        f"{step:>6} {name:<5} {loss.item():>8.4f} {w0:>8.3f} {rate:>9} {factor:>5} "
                        f"{diag['dormant_ratio']:>8.3f} {diag['srank']:>6.1f}"
                    )
                    results[name] = {"loss": loss.item(), "weight_norm_0": w0, **diag}
    alarms = ", ".join(str(a) for a in schedule.alarms) or "none"
    switches = ", ".join(str(k * cfg.steps_per_task) for k in range(1, cfg.tasks))
    print(f"teacher switched at steps {switches or 'never'}; CUSUM re-warmed at steps {alarms}")
    return results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        from importlib.resources import files

        defaults = (files("plastic_rl.configs") / "demo.yaml").read_text()
        print(
            f"usage: python -m plastic_rl.tools.core_demo [key=value ...]\n\n{__doc__.strip()}\n\nsettings (configs/demo.yaml):\n{defaults}"
        )
        return
    cfg = load_config("demo", argv)
    start = time.perf_counter()
    run(cfg)
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
