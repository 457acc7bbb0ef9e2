"""Saving and loading fitted codecs: safetensors arrays plus a versioned JSON config.

A folder holds ``tensors.safetensors`` and ``config.json``; the config names the
codec kind, its format version and the hash of its parameters, which
:func:`check_hash` compares with the hash of the codec rebuilt from the arrays.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

CONFIG, TENSORS = "config.json", "tensors.safetensors"


def write(folder: str | Path, arrays: dict[str, np.ndarray], config: dict) -> Path:
    """Write ``arrays`` (integers as int64, the rest as float64) and ``config`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({name: np.ascontiguousarray(a, dtype=np.int64 if a.dtype.kind in "iu"
                                          else np.float64) for name, a in arrays.items()},
              str(folder / TENSORS))
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def read(folder: str | Path, kind: str, version: int, required, owner: str):
    """``(config, arrays)`` of a folder written by :func:`write` for codec ``kind``.

    Raises
    ------
    FileNotFoundError
        Without both files.
    ValueError
        For another kind or format version, or missing arrays.
    """
    folder = Path(folder)
    config_path, tensor_path = folder / CONFIG, folder / TENSORS
    if not config_path.is_file() or not tensor_path.is_file():
        raise FileNotFoundError(f"folder: expected {CONFIG} and {TENSORS} in {folder} "
                                f"(written by {owner}.save)")
    config = json.loads(config_path.read_text())
    if config.get("rdgap_codec") != kind or config.get("format_version") != version:
        raise ValueError(f"folder: {folder} holds codec {config.get('rdgap_codec')!r} format "
                         f"{config.get('format_version')!r}; expected {kind!r} format {version}")
    arrays = load_file(str(tensor_path))
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ValueError(f"folder: {TENSORS} lacks {missing}")
    return config, arrays


def check_hash(codec, config: dict, folder) -> None:
    """Raise ValueError unless the rebuilt codec's hash is the one the config recorded."""
    if codec.digest.hex() != config.get("hash"):
        raise ValueError(f"folder: the tensors of {folder} do not match the hash in its "
                         f"{CONFIG}; the files are corrupted or from different codecs")
