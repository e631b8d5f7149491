"""Which environment ids exist where: ``plastic_rl.env_ids``, the one rule training and diagnose share."""

from plastic_rl.env_ids import (  # noqa: F401 -- re-exported
    BACKENDS,
    backend_of,
    checkpoint_backend,
    close_matches,
    envpool_family,
    envpool_ids,
    envpool_ids_of,
    gymnasium_ids,
    is_envpool_atari,
    resolve_backend,
    unknown_id_error,
)
