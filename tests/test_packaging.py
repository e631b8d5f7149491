"""The package installs and finds its parts from an editable install and from a built wheel."""

import ast
import importlib
import importlib.resources
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = [
    "plastic_rl.layers",
    "plastic_rl.norm",
    "plastic_rl.schedules",
    "plastic_rl.flat_params",
    "plastic_rl.projection",
    "plastic_rl.elr",
    "plastic_rl.unit_flow",
    "plastic_rl.interventions",
    "plastic_rl.diagnostics",
    "plastic_rl.env_ids",
]
MAPPED = {"plastic_rl.agents": "agents", "plastic_rl.envs": "envs", "plastic_rl.tools": "tools", "plastic_rl.configs": "configs"}

CHECK_INSTALL = r"""
import importlib, importlib.resources, json, sys
mods = {m: importlib.import_module(m).__file__ for m in %r}
configs = sorted(p.name for p in importlib.resources.files("plastic_rl.configs").iterdir() if p.name.endswith(".yaml"))
from plastic_rl.tools.config import load_config
cfg = load_config("demo", ["tasks=7"])
train = load_config("config", ["env=Atari", "agent=dqn"])
print(json.dumps({"files": mods, "configs": configs, "tasks": cfg.tasks, "atari_dqn_lr": train.agent.kwargs.learning_rate}))
"""


def test_editable_install_maps_the_top_level_folders():
    for module, folder in MAPPED.items():
        path = Path(importlib.import_module(module).__file__)
        assert path.parent == ROOT / folder, (module, path)
    assert (importlib.resources.files("plastic_rl.configs") / "demo.yaml").is_file()
    from plastic_rl.tools.config import load_config

    assert load_config("demo", ["seed=3"]).seed == 3


@pytest.mark.slow
def test_built_wheel_imports_the_mapped_packages_and_finds_the_configs(tmp_path):
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheel_dir.glob("plastic_rl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "plastic_rl/configs/demo.yaml" in names and "plastic_rl/configs/env/Atari.yaml" in names
    assert "plastic_rl/agents/__init__.py" in names and "plastic_rl/tools/bench_core.py" in names
    assert not any(n.startswith(("tests/", "agents/", "tools/")) for n in names)
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", CHECK_INSTALL % (list(MAPPED) + ["plastic_rl"],)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    import json

    report = json.loads(run.stdout.strip().splitlines()[-1])
    for module, path in report["files"].items():
        assert path.startswith(str(site)), (module, path)  # the wheel's copy, not the checkout
    assert {"demo.yaml", "config.yaml"} <= set(report["configs"]) and report["tasks"] == 7
    assert report["atari_dqn_lr"] == 1e-4  # configs/hparams/dqn_Atari.yaml, found inside the wheel


def test_core_does_not_import_stable_baselines3():
    for module in CORE:
        path = ROOT / module.replace(".", "/")
        files = sorted(path.glob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
        source = "\n".join(f.read_text() for f in files)
        imported = {
            name
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for name in ([a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""])
        }
        assert not any(n.startswith("stable_baselines3") for n in imported), module
    code = f"import sys; import {', '.join(CORE)}; print('stable_baselines3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_ci_runs_the_readme_test_command():
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    (command,) = [line for line in ci if "pytest" in line]
    assert ci[-1] == "ruff check . && ruff format --check . && python .ci/typecheck.py"  # the habits, after the tests
    assert "pytest" in command
    readme = (ROOT / "README.md").read_text()
    assert command in readme
    # the README's first code block holds the two set-up commands, the test command among them
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    assert command in first_block and "plastic_rl" in first_block


def test_the_readme_core_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    core = [b for b in blocks if "from plastic_rl.elr import" in b]
    assert len(core) == 2  # the ELR walk-through and the on-demand/weight-decay example
    namespace: dict = {}
    for block in core:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["elr"].lr_factor > 1.0  # the second example re-warmed
    (interventions,) = [b for b in blocks if "from plastic_rl.interventions import" in b]
    exec(compile(interventions, "README.md", "exec"), {})  # its asserts are the known answers


# Small modules with one job each (issue 14): none over 400 lines.
def test_no_module_is_over_400_lines():
    files = [p for folder in ("plastic_rl", "agents", "envs") for p in (ROOT / folder).rglob("*.py")]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_typecheck_sees_the_package_as_python_imports_it(tmp_path):
    """.ci/typecheck.py: mypy cannot follow package-dir; the symlink tree it checks is the installed layout."""
    sys.path.insert(0, str(ROOT / ".ci"))
    try:
        import typecheck
    finally:
        sys.path.remove(str(ROOT / ".ci"))
    mapping = typecheck.package_dirs()
    typecheck.build_tree(tmp_path, mapping)
    top = tmp_path / "plastic_rl"
    for package in ("agents", "envs", "tools", "configs"):
        assert (top / package).resolve() == ROOT / mapping[f"plastic_rl.{package}"]
    assert (top / "agents" / "base.py").is_file() and (top / "env_ids.py").resolve() == ROOT / "plastic_rl" / "env_ids.py"
    report = "plastic_rl/agents/base.py:3: error: x\nplastic_rl/env_ids.py:1: error: y\nplastic_rl/tools/a.py:2: note: z"
    assert typecheck.repository_paths(report, mapping).splitlines() == [
        "agents/base.py:3: error: x", "plastic_rl/env_ids.py:1: error: y", "tools/a.py:2: note: z"]  # fmt: skip
