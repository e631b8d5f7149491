"""SB3-compatible agents (PlasticPPO, PlasticDQN, PlasticSAC): thin subclasses that wire the core into SB3's loops."""
