"""Hydra configs, shipped as package data: ``initialize_config_module("plastic_rl.configs")`` finds them."""
