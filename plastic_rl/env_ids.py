"""Which environment ids exist where: envpool's list, gymnasium's registry, close matches for typos.

The one place that answers "is this id an envpool id?", "is it an envpool Atari game?", "which backend
makes it?" (``resolve_backend``: envpool where it has the id, else gymnasium), "which backend was a
checkpoint trained on?" (``backend_of`` an env, ``checkpoint_backend``) and "what did the user probably
mean?", so training (``make_vec_env``, the presets, ``TaskSequence``) and ``diagnose`` (which re-creates
a checkpoint's env) agree. A core module: it imports neither SB3 nor torch, so diagnose checks an env id
before loading anything heavy. ``plastic_rl.envs.registry`` re-exports it.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable

BACKENDS = ("auto", "envpool", "gymnasium")


@functools.lru_cache(maxsize=1)
def envpool_ids() -> frozenset[str]:
    """Every id ``envpool.make`` accepts; empty where envpool is not installed (it is Linux-only)."""
    try:
        import envpool
    except ImportError:
        return frozenset()
    return frozenset(envpool.list_all_envs())


def gymnasium_ids() -> frozenset[str]:
    """Every id registered with gymnasium now (not cached: importing a plugin adds ids)."""
    import gymnasium as gym

    return frozenset(gym.registry.keys())


def envpool_family(env_id: str) -> str | None:
    """The envpool module that implements ``env_id`` (``"envpool.atari"``, ``"envpool.mujoco.gym"``,
    ``"envpool.classic_control"``, ...), or None when envpool lacks the id.

    :param env_id: any environment id.
    """
    if env_id not in envpool_ids():
        return None
    from envpool.registration import registry

    return registry.specs[env_id][0]


def envpool_ids_of(family: str) -> list[str]:
    """Sorted envpool ids of one family, e.g. ``envpool_ids_of("envpool.atari")``.

    :param family: an envpool module, as ``envpool_family`` names it.
    """
    return sorted(i for i in envpool_ids() if envpool_family(i) == family)


def is_envpool_atari(env_id: str) -> bool:
    """True for envpool's Atari games (``Pong-v5``, ...): they have lives, raw rewards in the info, frame stacks.

    :param env_id: any environment id.
    """
    return envpool_family(env_id) == "envpool.atari"


MATCH_CUTOFF = 0.75  # difflib similarity an id needs to be offered as a close match (0.6 offered random ids)
_VERSION = re.compile(r"-v\d+$")


def _name(env_id: str) -> str:
    """An id's name, compared across versions and namespaces: ``plastic_rl/MinAtar-Breakout-v1`` -> ``minatar-breakout``."""
    return _VERSION.sub("", env_id.lower().rsplit("/", 1)[-1])


def close_matches(env_id: str, n: int = 5, ids: Iterable[str] | None = None) -> list[str]:
    """The known ids nearest to ``env_id``, nearest first; only those at least ``MATCH_CUTOFF`` similar.

    An id's similarity is difflib's ratio, case-insensitively, of the whole ids or of their names without the
    version and namespace, whichever is higher (``pong`` finds ``Pong-v5``; ``NotAnEnv-v9`` finds nothing).

    :param env_id: the id looked for.
    :param n: at most this many matches.
    :param ids: the ids to search; None: gymnasium's registry and envpool's list.
    """
    candidates = sorted(envpool_ids() | gymnasium_ids() if ids is None else set(ids))
    whole, name = env_id.lower(), _name(env_id)
    scored = []
    for candidate in candidates:
        full = difflib.SequenceMatcher(None, whole, candidate.lower()).ratio()
        score = max(full, difflib.SequenceMatcher(None, name, _name(candidate)).ratio())
        if score >= MATCH_CUTOFF:
            scored.append((-score, -full, candidate))
    return [candidate for _, _, candidate in sorted(scored)[:n]]


# The families of ids, by the module that implements them (a gymnasium entry point's package, or envpool's family).
FAMILIES = {"classic_control": "classic control", "atari": "Atari", "ale_py": "Atari", "mujoco": "MuJoCo",
            "mujoco.gym": "MuJoCo", "minatar": "MinAtar", "box2d": "Box2D", "toy_text": "toy text",
            "mujoco.dmc": "DeepMind Control", "procgen": "Procgen", "minigrid": "MiniGrid", "vizdoom": "ViZDoom",
            "mujoco.myosuite": "MyoSuite", "mujoco.robotics": "Gymnasium-Robotics", "mujoco.metaworld": "Meta-World",
            "mujoco.playground": "MuJoCo Playground", "highway": "highway-env", "jumanji": "Jumanji", "pgx": "Pgx",
            "gfootball": "Google Research Football", "gymnasium": "gymnasium (legacy)"}  # fmt: skip
# The families plastic_rl's env configs train on: a message names them first, each with an example.
EXAMPLES = {"classic control": "CartPole-v1", "Atari": "Pong-v5", "MuJoCo": "HalfCheetah-v4",
            "MinAtar": "plastic_rl/MinAtar-Breakout-v1"}  # fmt: skip


def family(env_id: str) -> str:
    """The family of a known id (``"classic control"``, ``"Atari"``, ``"MuJoCo"``, ``"MinAtar"``, ...).

    :param env_id: an id of envpool's list or gymnasium's registry.
    """
    import gymnasium as gym

    spec = gym.registry.get(env_id)  # gymnasium's first: naming the family of its ids never imports envpool
    if spec is not None:
        entry = spec.entry_point
        module = entry.split(":")[0] if isinstance(entry, str) else str(getattr(entry, "__module__", ""))
        parts = module.split(".")  # gymnasium.envs.<family>..., plastic_rl.envs.<family>, or a plugin (ale_py)
        key = parts[2] if len(parts) > 2 and parts[1] == "envs" else parts[0]
    else:
        key = (envpool_family(env_id) or "other").removeprefix("envpool.")
    return FAMILIES.get(key, key.replace("_", " "))


def families(ids: Iterable[str]) -> str:
    """The families of ``ids``, as a message names them: the ones with an example first, then the others.

    :param ids: known ids (envpool's list, gymnasium's registry, or both).
    """
    found: dict[str, list[str]] = {}
    for env_id in sorted(ids):
        found.setdefault(family(env_id), []).append(env_id)
    named = [f"{name} (e.g. {EXAMPLES[name] if EXAMPLES[name] in found[name] else found[name][0]})"
             for name in EXAMPLES if name in found]  # fmt: skip
    others = sorted((name for name in found if name not in EXAMPLES), key=str.lower)
    return ", ".join(named) + (f"; also {', '.join(others)}" if others else "")


def unknown_id_error(env_id: str, where: str = "envpool or gymnasium", ids: Iterable[str] | None = None) -> ValueError:
    """The ValueError for an id that was not found, naming its close matches, else the families of ids there are.

    :param env_id: the unknown id.
    :param where: where it was looked for, as the message says it.
    :param ids: the ids looked in; None: gymnasium's registry and envpool's list.
    """
    known = envpool_ids() | gymnasium_ids() if ids is None else frozenset(ids)
    matches = close_matches(env_id, ids=known)
    hint = f"Close matches: {', '.join(matches)}." if matches else f"No close match; the ids are in: {families(known)}."
    return ValueError(f"unknown environment id {env_id!r} (not in {where}). {hint}")


def resolve_backend(env_id: str, backend: str = "auto") -> str:
    """``"envpool"`` or ``"gymnasium"`` for ``env_id``; ValueError for a bad backend or an unknown id.

    :param env_id: an envpool or gymnasium id (``"module:Env-v0"`` ids are left to gymnasium to import).
    :param backend: ``"auto"``, training's rule: envpool where it has the id, else gymnasium; ``"envpool"`` or
        ``"gymnasium"``: that one, if it has the id. ``"gymnasium"`` never imports envpool (about a second: it loads every env family).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is unknown; accepted: {', '.join(BACKENDS)}")
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a string, not {type(env_id).__name__}")
    if backend == "envpool":
        if env_id not in envpool_ids():
            if not envpool_ids():
                raise ValueError("backend='envpool' but envpool is not installed (it is Linux-only): use backend='gymnasium'")
            raise unknown_id_error(env_id, "envpool", envpool_ids())
        return "envpool"
    # "module:EnvName-v0" ids import their module inside gym.make: let gymnasium resolve them.
    in_gymnasium = env_id in gymnasium_ids() or ":" in env_id
    if backend == "gymnasium":
        if not in_gymnasium:
            raise unknown_id_error(env_id, "gymnasium's registry", gymnasium_ids())
        return "gymnasium"
    if env_id in envpool_ids():
        return "envpool"
    if in_gymnasium:
        return "gymnasium"
    raise unknown_id_error(env_id)


def checkpoint_backend(env_id: str, recorded: str | None = None) -> str:
    """The backend that re-creates the env a checkpoint was trained on, so it is diagnosed on that env.

    :param env_id: the env id the checkpoint records.
    :param recorded: the backend the checkpoint records (plastic_rl's agents save ``env_backend``, from the env they
        were trained on: ``backend_of``). None (SB3's own zips; plastic_rl's from before the record): made the SB3 way,
        on gymnasium where it has the id, else envpool (an envpool-only id such as ``Pong-v5`` was trained on ``plastic_rl.envs``).
    """
    if recorded is not None:
        return resolve_backend(env_id, recorded)
    if env_id in gymnasium_ids() or ":" in env_id:
        return "gymnasium"
    return resolve_backend(env_id)


def backend_of(env: object) -> str | None:
    """``"envpool"`` or ``"gymnasium"``: the backend that made ``env``, or None if it cannot tell (an env with no registered id).

    :param env: a gymnasium env, an SB3 VecEnv, or a wrapper of either.

    plastic_rl's envpool adapter and task sequences say so in an ``env_backend`` attribute (SB3's VecEnv
    wrappers pass attribute reads through); any other env with a gymnasium spec was made by gymnasium.
    """
    said = getattr(env, "env_backend", None)
    if isinstance(said, str):
        return said
    get_attr = getattr(env, "get_attr", None)  # an SB3 VecEnv: ask its first env
    try:
        spec = get_attr("spec", indices=[0])[0] if callable(get_attr) else getattr(env, "spec", None)
    except (AttributeError, IndexError):
        return None
    return "gymnasium" if isinstance(getattr(spec, "id", None), str) else None
