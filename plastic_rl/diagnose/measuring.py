"""``diagnose``: load each series' checkpoints, measure every network on one batch, and the changes between
neighbours (Delta_C, Delta_A, the parameter-change ELR)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from plastic_rl import checkpoints as ckpts
from plastic_rl.checkpoints import Checkpoint, fail
from plastic_rl.diagnose.series import _note, _plan_obs, _reference, _series


def _weights(module) -> dict[str, Any]:
    """(W, b) of every Linear/Conv as one float64 CPU vector, by layer name."""
    import torch

    from plastic_rl import layers

    return {
        name: torch.cat([p.detach().reshape(-1).double().cpu() for p in layers.layer_params(layer)])
        for name, layer in layers.iter_weight_layers(module)
    }


def _param_elr(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """||theta_k - theta_{k-1}|| / ||theta_{k-1}|| per layer ((W, b) jointly) and over all layers jointly."""
    out: dict[str, float] = {}
    num = den = 0.0
    for name, w in after.items():
        prev = before.get(name)
        if prev is None or prev.shape != w.shape:
            continue
        d2, p2 = float((w - prev).pow(2).sum()), float(prev.pow(2).sum())
        out[f"param_elr/{name}"] = _ratio(d2, p2)
        num, den = num + d2, den + p2
    if out:
        out["param_elr"] = _ratio(num, den)
    return out


def _ratio(d2: float, p2: float) -> float:
    if p2 == 0.0:
        return 0.0 if d2 == 0.0 else math.inf
    return math.sqrt(d2 / p2)


def diagnose(
    path_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
    env: str | None = None,
    obs: Any = None,
    n_obs: int = 2048,
    seed: int = 0,
    *,
    tau: float = 0.025,
    delta: float = 0.01,
    obs_from: str = "first",
    n_envs: int = ckpts.N_ENVS,
    backend: str | None = None,
    save_obs: str | os.PathLike | None = None,
    log=None,
    _before_load=None,
) -> list[dict[str, Any]]:
    """Diagnose checkpoints; one row per checkpoint x network, ordered by series, step, network.

    :param path_or_paths: checkpoint zip(s) and/or run folder(s) (see the module docstring for series).
    :param env: env id to collect observations in (default: the id the checkpoint records).
    :param obs: a ``.npy``/``.npz`` path or an array (dict of arrays for Dict spaces) instead of collecting.
    :param n_obs: batch size (with ``obs``: its first ``n_obs`` rows).
    :param seed: env seed of the collection (env i gets ``seed + i``).
    :param tau: dormant threshold of ``diagnostics.measure``.
    :param delta: srank's delta of ``diagnostics.measure``.
    :param obs_from: ``"first"`` or ``"last"``: which checkpoint of a series collects its batch and supplies the critics' actions.
    :param n_envs: parallel envs of the collection (at most ``n_obs``).
    :param backend: ``"envpool"``, ``"gymnasium"`` or ``"auto"`` (training's rule) to make the env on; None: the backend
        the checkpoint records it was trained on (``plastic_rl.env_ids.checkpoint_backend``).
    :param save_obs: write the (last series') batch to this ``.npy`` (``.npz`` for Dict spaces).
    :param log: callable taking one-line notes (the CLI passes a stderr printer); None: silent.

    A row holds ``series``, ``checkpoint``, ``step``, ``algorithm``, ``network``, ``n_obs``,
    ``observations`` (where the batch came from), every key of ``diagnostics.measure`` (aggregates and
    ``<metric>/<layer>``), and from the second checkpoint of a series on ``delta_c``, ``delta_a``
    (``compare``) and ``param_elr`` (aggregate and per layer). Errors: ``FileNotFoundError`` or
    ``ValueError`` with the message ``"<file>: <problem>"``. A folder's zips that cannot be read are skipped with an
    ``UnreadableCheckpoint`` warning naming each (ValueError if none of its zips can be read).
    """
    if obs_from not in ("first", "last"):
        raise ValueError(f"obs_from={obs_from!r}: use 'first' or 'last'")
    if backend not in (None, "auto", "envpool", "gymnasium"):
        raise ValueError(f"backend={backend!r}: use 'envpool', 'gymnasium', 'auto' or None (the checkpoint's own)")
    if not (isinstance(n_obs, int) and n_obs >= 1):
        raise ValueError(f"n_obs={n_obs!r} must be an int >= 1")
    paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    all_series = _series(paths, log)
    plans = [_plan_obs(series, env, obs, n_obs, obs_from, backend) for _, series in all_series]
    if _before_load is not None:  # the CLI's import of SB3 (everything above is cheap and checks the input)
        _before_load()
    from plastic_rl import diagnostics

    rows: list[dict[str, Any]] = []
    for (label, series), (env_id, env_backend, batch) in zip(all_series, plans):
        ref = _reference(series, obs_from)
        ref_model = ckpts.load(ref)
        if batch is None and obs is None:
            batch = ckpts.collect_obs(ref_model, env_id, n_obs, seed, ref.path, n_envs, env_backend)
            source = f"{env_id} seed {seed} ({env_backend}) by {ref.path.name}"
        elif batch is None:
            batch = (
                ckpts.load_obs(obs, ref_model.observation_space, n_obs)
                if isinstance(obs, (str, os.PathLike))
                else ckpts.fit_obs(obs, ref_model.observation_space, "obs", n_obs)
            )
        if obs is not None:
            source = str(obs) if isinstance(obs, (str, os.PathLike)) else "array"
        if save_obs is not None:
            _save_batch(save_obs, batch)
        obs_t = ckpts.as_tensor(batch)
        count = ckpts.n_rows(batch)
        _note(log, f"{label}: {len(series)} checkpoint(s), {count} observations from {source}")
        actions = ckpts.reference_actions(ref_model, ref.algo, obs_t) if ref.algo.needs_actions else None
        previous: dict[str, tuple[Any, Any]] = {}  # network -> (snapshot, weights) of the previous checkpoint
        for ckpt in series:
            model = ref_model if ckpt is ref else ckpts.load(ckpt)
            ckpts.fit_obs(batch, model.observation_space, ckpt.path, n_obs)  # same batch fits every member
            if ckpt.algo.needs_actions and actions is None:
                actions = ckpts.reference_actions(model, ckpt.algo, obs_t)
            inputs = {"observations": obs_t, "actions": actions} if ckpt.algo.needs_actions else obs_t
            measured = 0
            for name, module, forward in ckpts.networks(model, ckpt.algo):
                row: dict[str, Any] = {
                    "series": label,
                    "checkpoint": str(ckpt.path),
                    "step": ckpt.step,
                    "algorithm": ckpt.algo.name,
                    "network": name,
                    "n_obs": count,
                    "observations": source,
                }
                try:
                    row.update(diagnostics.measure(module, inputs, tau=tau, delta=delta, forward=forward))
                except ValueError as exc:  # e.g. a linear policy: no activation to diagnose
                    _note(log, f"{ckpt.path}: network {name} not diagnosed ({exc})")
                    problem = exc
                    continue
                measured += 1
                if len(series) > 1:
                    snapshot = diagnostics.FeatureSnapshot(module, inputs, forward=forward)
                    weights = _weights(module)
                    if name in previous:
                        row.update(_changes(previous[name], snapshot, weights, ckpt, name, log))
                    previous[name] = (snapshot, weights)
                rows.append(row)
            if not measured:
                raise fail(ckpt.path, f"no network of this {ckpt.algo.name} checkpoint can be diagnosed ({problem})")
    return rows


def _changes(prev: tuple[Any, Any], snapshot, weights, ckpt: Checkpoint, name: str, log) -> dict[str, float]:
    from plastic_rl import diagnostics

    out: dict[str, float] = {}
    try:
        out.update(diagnostics.compare(prev[0], snapshot))
    except ValueError as exc:  # a different architecture in the same series: no Delta for this pair
        _note(log, f"{ckpt.path}: no delta_c/delta_a for {name} ({exc})")
    out.update(_param_elr(prev[1], weights))
    return out


def _save_batch(path: str | os.PathLike, batch: Any) -> None:
    import numpy as np

    if isinstance(batch, dict):
        np.savez(path, **batch)
    else:
        np.save(path, batch)
