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
    "plastic_rl.report",
]
SUBPACKAGES = ("agents", "envs", "tools", "configs", "checkpoints", "diagnose", "diagnostics", "train", "report")
PYPROJECT = ROOT / "pyproject.toml"


def source_packages() -> set[str]:
    """Every package under plastic_rl/ in the checkout (a folder with an __init__.py), as a dotted name."""
    return {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "plastic_rl").rglob("__init__.py")}


def test_the_package_is_laid_out_on_disk_as_it_is_imported():
    """No package-dir mapping (issue 19, 23): plastic_rl.X lives in plastic_rl/X, editable install included."""
    import tomllib

    setuptools = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]
    assert "package-dir" not in setuptools and "packages" in setuptools and "find" in setuptools["packages"]
    for name in SUBPACKAGES:
        path = Path(importlib.import_module(f"plastic_rl.{name}").__file__)
        assert path.parent == ROOT / "plastic_rl" / name, (name, path)
    assert {f"plastic_rl.{name}" for name in SUBPACKAGES} <= source_packages()
    assert (importlib.resources.files("plastic_rl.configs") / "demo.yaml").is_file()
    from plastic_rl.tools.config import load_config

    assert load_config("demo", ["seed=3"]).seed == 3


# A new user's first steps, from the installed wheel in an unrelated folder (issue 19): the public names,
# a short training run, diagnose and report on it, and every tool's --help.
TOOLS = sorted(p.stem for p in (ROOT / "plastic_rl" / "tools").glob("*.py") if "__main__" in p.read_text())
CHECK_INSTALL = r"""
import importlib, importlib.resources, json, sys
mods = {m: importlib.import_module(m).__file__ for m in %r}
configs = sorted(str(p.relative_to(importlib.resources.files("plastic_rl.configs")))
                 for p in importlib.resources.files("plastic_rl.configs").rglob("*.yaml"))
namespace = {}
exec("from plastic_rl import *", namespace)
import plastic_rl
missing = [name for name in plastic_rl.__all__ if name not in namespace]
from plastic_rl.tools.config import load_config
train = load_config("config", ["env=Atari", "agent=dqn"])
print(json.dumps({"files": mods, "configs": configs, "missing": missing, "public": plastic_rl.__all__,
                  "atari_dqn_lr": train.agent.kwargs.learning_rate}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> dict:
    """The wheel built from the checkout, its file names, and a folder it is installed into (--target)."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel_dir, site = tmp / "dist", tmp / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(ROOT)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert build.returncode == 0, build.stderr
    (path,) = wheel_dir.glob("plastic_rl-*.whl")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(path)],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert install.returncode == 0, install.stderr
    # The dependencies are this venv's; the package is the wheel's (PYTHONPATH comes before the editable finder).
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    return {"names": zipfile.ZipFile(path).namelist(), "site": site, "env": env, "cwd": tmp}


def run_installed(wheel: dict, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=wheel["cwd"], env=wheel["env"], timeout=timeout)


@pytest.mark.slow
def test_the_wheel_holds_every_package_and_config_of_the_source_tree(wheel):
    names = wheel["names"]
    in_wheel = {str(Path(n).parent).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert source_packages() == in_wheel, source_packages() ^ in_wheel
    yamls = {str(p.relative_to(ROOT)) for p in (ROOT / "plastic_rl" / "configs").rglob("*.yaml")}
    assert yamls and yamls <= set(names), yamls - set(names)
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "plastic_rl").rglob("*.py")}
    assert modules <= set(names), modules - set(names)
    assert not any(n.startswith(("tests/", "agents/", "tools/", "envs/", "configs/")) for n in names)


@pytest.mark.slow
def test_the_installed_wheel_imports_every_public_name_and_finds_its_configs(wheel):
    packages = sorted(source_packages())
    run = run_installed(wheel, "-c", CHECK_INSTALL % (packages,))
    assert run.returncode == 0, run.stderr
    import json

    report = json.loads(run.stdout.strip().splitlines()[-1])
    for module, path in report["files"].items():
        assert path.startswith(str(wheel["site"])), (module, path)  # the wheel's copy, not the checkout
    assert not report["missing"] and {"PlasticPPO", "PlasticDQN", "PlasticSAC"} <= set(report["public"])
    assert {"demo.yaml", "config.yaml", "env/Atari.yaml", "plasticity/elr.yaml", "hparams/dqn_Atari.yaml"} <= set(report["configs"])
    assert report["atari_dqn_lr"] == 1e-4  # configs/hparams/dqn_Atari.yaml, found inside the wheel


@pytest.mark.slow
def test_the_installed_wheel_trains_diagnoses_and_reports(wheel):
    train = run_installed(wheel, "-m", "plastic_rl.train", "total_timesteps=1024", "eval_freq=512", "eval_episodes=2",
                          "checkpoint_freq=512", "progress_bar=false", "run_name=wheel_run")  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    run_dir = wheel["cwd"] / "runs" / "wheel_run"
    assert (run_dir / "final_model.zip").is_file() and (run_dir / "evaluations.csv").is_file()
    diagnose = run_installed(wheel, "-m", "plastic_rl.diagnose", str(run_dir), "--n-obs", "64", "-q")
    assert diagnose.returncode == 0, diagnose.stderr[-2000:]
    report = run_installed(wheel, "-m", "plastic_rl.report", str(run_dir.parent), "--out", str(wheel["cwd"] / "report"))
    assert report.returncode == 0, report.stderr[-2000:]
    assert (wheel["cwd"] / "report" / "report.md").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
def test_every_installed_tool_prints_its_help(wheel, tool):
    out = run_installed(wheel, "-m", f"plastic_rl.tools.{tool}", "--help", timeout=120)
    assert out.returncode == 0 and "usage" in out.stdout.lower(), (out.stdout[-500:], out.stderr[-1000:])


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["train", "--help"], ["diagnose", "--help"]])
def test_the_console_script_prints_usage_and_exits_0(argv):
    out = subprocess.run([sys.executable, "-m", "plastic_rl.cli", *argv], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HYDRA_FULL_ERROR": "0"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-1000:]
    assert ("usage" in out.stdout.lower()) or ("powered by hydra" in out.stdout.lower()), out.stdout[:500]
    if argv[0] in ("--help", "-h"):
        assert "train" in out.stdout and "diagnose" in out.stdout


def test_the_console_script_names_a_bad_command():
    out = subprocess.run([sys.executable, "-m", "plastic_rl.cli", "trian"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.strip() == "error: plastic-rl needs a command, got 'trian'; accepted: train, diagnose"


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
    assert ci[-1] == "ruff check . && ruff format --check . && mypy"  # the habits, after the tests: plain mypy (issue 23)
    assert "pytest" in command
    readme = (ROOT / "README.md").read_text()
    assert command in readme
    # the README's first code block holds the two set-up commands, the test command among them
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    assert command in first_block and "plastic_rl" in first_block


def test_the_readme_core_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs/core.md").read_text(), re.S)
    core = [b for b in blocks if "from plastic_rl.elr import" in b]
    assert len(core) == 2  # the ELR walk-through and the on-demand/weight-decay example
    namespace: dict = {}
    for block in core:
        exec(compile(block, "docs/core.md", "exec"), namespace)
    assert namespace["elr"].lr_factor > 1.0  # the second example re-warmed
    (interventions,) = [b for b in blocks if "from plastic_rl.interventions import" in b]
    exec(compile(interventions, "docs/core.md", "exec"), {})  # its asserts are the known answers


# Small modules with one job each (issue 14): none over 400 lines.
def test_no_module_is_over_400_lines():
    files = list((ROOT / "plastic_rl").rglob("*.py"))  # tools/ included (issue 23)
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
