"""Where rdgap keeps its caches.

The cache folder holds the safetensors copy of the embedded default model and,
later, cached hidden states. It is, in order of precedence: the ``cache_dir``
argument of the function that uses it (``--cache-dir`` on the command line),
the environment variable ``RDGAP_CACHE_DIR``, and ``$XDG_CACHE_HOME/rdgap``
(``~/.cache/rdgap`` when ``XDG_CACHE_HOME`` is unset).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "RDGAP_CACHE_DIR"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The rdgap cache folder (created if missing).

    Parameters
    ----------
    override : path-like, optional
        Use this folder instead of the environment or the default.

    Returns
    -------
    pathlib.Path
        An existing folder.
    """
    if override is not None:
        path = Path(override)
    elif os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV])
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "rdgap"
    path = path.expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"cache_dir: {path} exists and is not a folder; "
                         f"expected a folder path (set {CACHE_ENV} or --cache-dir)")
    path.mkdir(parents=True, exist_ok=True)
    return path
