"""The ``plastic-rl`` console script: ``plastic-rl train ...`` and ``plastic-rl diagnose ...``.

Each subcommand is the same program as its ``python -m plastic_rl.<name>`` form.
"""

from __future__ import annotations

import sys

COMMANDS = ("train", "diagnose")
USAGE = """usage: plastic-rl {train,diagnose} [ARGS ...]

  train     train an agent (Hydra overrides: env=Atari agent=dqn plasticity=nap ...);
            the same as python -m plastic_rl.train; plastic-rl train --help lists the options
  diagnose  measure the plasticity of a run folder or an SB3 zip;
            the same as python -m plastic_rl.diagnose; plastic-rl diagnose --help lists the options"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if not argv or argv[0] not in COMMANDS:
        given = repr(argv[0]) if argv else "nothing"
        print(f"error: plastic-rl needs a command, got {given}; accepted: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "diagnose":
        from plastic_rl.diagnose import main as diagnose

        return int(diagnose(rest) or 0)
    from plastic_rl.train import main as train

    sys.argv = [f"{sys.argv[0]} train", *rest]
    train(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
