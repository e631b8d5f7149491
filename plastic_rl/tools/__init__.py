"""Reference validators and benchmarks, run as ``python -m plastic_rl.tools.<name>``."""
