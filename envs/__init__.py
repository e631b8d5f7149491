"""Environment factories: envpool -> SB3 VecEnv adapter, gymnasium fallback, non-stationary wrappers."""
