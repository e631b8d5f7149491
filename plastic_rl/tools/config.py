"""Load a config from the packaged ``configs/`` with Hydra's compose API, errors as one line.

Works the same from an editable install and from a wheel: Hydra finds the YAML through the
``plastic_rl.configs`` package (package data), not through a path on disk.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

from omegaconf import DictConfig


def fail(message: str) -> NoReturn:
    """Print one line to stderr and exit with code 2 (bad usage), like argparse does."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr)  # always one line
    raise SystemExit(2)


def load_config(name: str, overrides: Sequence[str] = (), hydra: bool = False) -> DictConfig:
    """The composed config; ``hydra=True`` keeps Hydra's own node (``cfg.hydra``) and accepts its overrides."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_module(config_module="plastic_rl.configs", version_base="1.3"):
            return compose(config_name=name, overrides=list(overrides), return_hydra_config=hydra)
    except (HydraException, OmegaConfBaseException) as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        fail(message.split(" Config search path")[0])  # Hydra appends its search path: noise here
