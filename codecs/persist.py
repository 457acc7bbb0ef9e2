"""Saving and loading fitted codecs: safetensors arrays plus a versioned JSON config.

A folder holds ``tensors.safetensors`` and ``config.json``; the config names the
codec kind, its format version and the hash of its parameters, which
:func:`check_hash` compares with the hash of the codec rebuilt from the arrays.

Loading is bounded and every failure is a ``ValueError`` naming the file and
the field (issue 17): a config over :data:`MAX_CONFIG_BYTES`, invalid or too
deeply nested JSON, a config that is not an object, a missing field, a field
of the wrong type, a tensors file safetensors cannot read, an array the codec
does not have, or a non-finite float array. ``config_digest`` (blake2b of the
config without it) covers the fields the parameter hash does not — ``rdo``, ``rdoq``,
the label, the family — so an edited config is refused; folders written
before it existed load without the check.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

CONFIG, TENSORS = "config.json", "tensors.safetensors"
#: Largest ``config.json`` read (bytes); a saved config is well under 1 KB.
MAX_CONFIG_BYTES = 1 << 20
#: Arrays a codec kind may hold beyond its required ones (the optional transform).
OPTIONAL_ARRAYS = ("analysis", "synthesis")
#: Types of the config fields the codecs read; a field of another type is refused by name.
FIELD_TYPES = {"rounding": (int, float), "rdo": (int, float), "rdoq": (int, float),
               "label": str, "family": str,
               "channels": int, "hash": str, "latents": int, "transform": bool,
               "embedding_hash": str, "config_digest": str}


class Config(dict):
    """A loaded config whose missing fields raise a ValueError naming them (not KeyError)."""

    folder = ""

    def __missing__(self, key):
        raise ValueError(f"folder: {CONFIG} in {self.folder} lacks the field {key!r}; it was "
                         f"not written by this rdgap's save, or was edited")


def config_digest(config: dict) -> str:
    """blake2b-64 of a config's fields other than ``config_digest`` itself."""
    fields = {k: v for k, v in config.items() if k != "config_digest"}
    text = json.dumps(fields, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def write(folder: str | Path, arrays: dict[str, np.ndarray], config: dict) -> Path:
    """Write ``arrays`` (integers as int64, the rest as float64) and ``config`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({name: np.ascontiguousarray(a, dtype=np.int64 if a.dtype.kind in "iu"
                                          else np.float64) for name, a in arrays.items()},
              str(folder / TENSORS))
    config = dict(config) | {"config_digest": config_digest(config)}
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def read(folder: str | Path, kind: str, version: int, required, owner: str):
    """``(config, arrays)`` of a folder written by :func:`write` for codec ``kind``.

    Raises
    ------
    FileNotFoundError
        Without both files.
    ValueError
        For another kind or format version, an unreadable, edited or mistyped
        config, an unreadable tensors file, missing, extra or non-finite
        arrays (each message names the file and the field).
    """
    folder = Path(folder)
    config_path, tensor_path = folder / CONFIG, folder / TENSORS
    if not config_path.is_file() or not tensor_path.is_file():
        raise FileNotFoundError(f"folder: expected {CONFIG} and {TENSORS} in {folder} "
                                f"(written by {owner}.save)")
    config = _read_config(config_path, folder)
    if config.get("rdgap_codec") != kind or config.get("format_version") != version:
        raise ValueError(f"folder: {folder} holds codec {config.get('rdgap_codec')!r} format "
                         f"{config.get('format_version')!r}; expected {kind!r} format {version}")
    try:
        arrays = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"folder: {tensor_path} is not a readable safetensors file "
                         f"({error}); the file is corrupted or was not written by {owner}.save") \
            from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ValueError(f"folder: {TENSORS} lacks {missing}")
    extra = sorted(set(arrays) - set(required) - set(OPTIONAL_ARRAYS))
    if extra:
        raise ValueError(f"folder: {TENSORS} holds arrays {extra} that a {kind!r} codec does "
                         f"not have; the file was edited or belongs to another codec")
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"folder: array {name!r} of {TENSORS} holds NaN or Inf; a fitted "
                             f"codec's arrays are finite (the file is corrupted or edited)")
    return config, arrays


def _read_config(path: Path, folder: Path) -> Config:
    """The config object of ``path``, checked for size, JSON, field types and digest."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"folder: {path} is {size} bytes, more than the {MAX_CONFIG_BYTES} "
                         f"a saved codec's {CONFIG} may have")
    try:
        config = json.loads(path.read_text())
    except (ValueError, RecursionError) as error:  # JSONDecodeError, bad UTF-8, deep nesting
        reason = "too deeply nested" if isinstance(error, RecursionError) else str(error)
        raise ValueError(f"folder: {path} is not valid JSON ({reason})") from None
    if not isinstance(config, dict):
        raise ValueError(f"folder: {path} holds a JSON {type(config).__name__}, expected an "
                         f"object of fields")
    for field, types in FIELD_TYPES.items():
        value = config.get(field)
        if value is not None and (not isinstance(value, types)
                                  or (isinstance(value, bool) and bool not in (types if
                                      isinstance(types, tuple) else (types,)))):
            raise ValueError(f"folder: field {field!r} of {path} is {value!r}, expected "
                             f"{_type_names(types)}")
    if "config_digest" in config and config["config_digest"] != config_digest(config):
        raise ValueError(f"folder: the fields of {path} differ from what save wrote (its "
                         f"config_digest does not match); the config was edited")
    loaded = Config(config)
    loaded.folder = str(folder)
    return loaded


def _type_names(types) -> str:
    return " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))


def check_hash(codec, config: dict, folder) -> None:
    """Raise ValueError unless the rebuilt codec's hash is the one the config recorded."""
    if codec.digest.hex() != config.get("hash"):
        raise ValueError(f"folder: the tensors of {folder} do not match the hash in its "
                         f"{CONFIG}; the files are corrupted or from different codecs")
