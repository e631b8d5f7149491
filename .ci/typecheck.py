"""mypy on plastic_rl as Python imports it: ``python .ci/typecheck.py [mypy options]``.

pyproject's ``[tool.setuptools.package-dir]`` maps the top-level ``agents/``, ``envs/`` and ``tools/``
folders into ``plastic_rl`` (the design's layout). mypy cannot follow that mapping: checked by folder,
every ``from plastic_rl.agents import ...`` resolves to nothing and is typed ``Any``, so calls across
the mapped packages go unchecked. This lays the installed package out as symlinks in a temporary folder
(``plastic_rl/`` with ``agents``, ``envs``, ``tools`` inside), runs mypy there with pyproject's
settings, and prints its report with the repository's own paths. Exit status: mypy's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mypy itself depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def package_dirs() -> dict[str, str]:
    """Package name -> folder, as pyproject's [tool.setuptools.package-dir] says."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["package-dir"]


def build_tree(target: Path, mapping: dict[str, str]) -> None:
    """``target/plastic_rl/...`` as the import system sees it, every entry a symlink into the repository."""
    top = target / "plastic_rl"
    top.mkdir()
    for entry in (ROOT / mapping.get("plastic_rl", "plastic_rl")).iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for package, folder in mapping.items():
        if package != "plastic_rl" and package.count(".") == 1:  # plastic_rl.agents -> agents/
            (top / package.split(".", 1)[1]).symlink_to(ROOT / folder)


def repository_paths(report: str, mapping: dict[str, str]) -> str:
    """mypy's ``plastic_rl/agents/base.py:12`` back to the file's place in the repository, ``agents/base.py:12``."""
    replacements = sorted(((f"plastic_rl/{p.split('.', 1)[1]}/", f"{d}/") for p, d in mapping.items() if p.count(".") == 1),
                          key=lambda pair: -len(pair[0]))  # fmt: skip
    lines = []
    for line in report.splitlines():
        for prefix, folder in replacements:
            if line.startswith(prefix):
                line = folder + line[len(prefix) :]
                break
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    mapping = package_dirs()
    with tempfile.TemporaryDirectory(prefix="plastic_rl_typecheck_") as tmp:
        build_tree(Path(tmp), mapping)
        command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), *argv, "plastic_rl"]
        env = {**os.environ, "MYPYPATH": ""}
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, env=env)
    sys.stdout.write(repository_paths(done.stdout, mapping) + ("\n" if done.stdout else ""))
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
