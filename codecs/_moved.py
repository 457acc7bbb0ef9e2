"""The old flat module names of ``rdgap.codecs``, kept for one release (issue 16).

The codec's modules moved into the pipeline folders (``transforms/``, ``quantizers/``,
``entropy_models/``, ``coders/``), and the split harness, which is no codec, into its own
package :mod:`rdgap.split`. :data:`MOVED` maps each old name to its new one, and
:class:`MovedModuleFinder` (installed on ``sys.meta_path`` by ``rdgap.codecs``) makes
``import rdgap.codecs.context`` give the moved module itself — the same object, so
monkeypatching and private names keep working — with a DeprecationWarning at the
importer. One table instead of one alias file per module keeps ``codecs/`` showing the
pipeline. Nothing shipped with rdgap imports an old name (``tests/test_imports.py``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

PACKAGE = "rdgap.codecs"

#: Old module under ``rdgap.codecs`` → its new path under ``rdgap.codecs``, or its full
#: new name when it left ``rdgap.codecs`` (``"rdgap.…"``).
MOVED: dict[str, str] = {
    "transform": "transforms.klt", "fisher": "transforms.fisher",
    "calibrate": "quantizers.calibrate", "ste": "quantizers.ste",
    "learned_steps": "quantizers.learned_steps", "finetune": "quantizers.finetune",
    "factorized": "entropy_models.factorized", "tables": "entropy_models.tables",
    "deep_density": "entropy_models.deep_density",
    "deep_factorized": "entropy_models.deep_factorized",
    "context": "entropy_models.context", "context_fit": "entropy_models.context_fit",
    "token_context": "entropy_models.token_context", "token_fit": "entropy_models.token_fit",
    "hyperprior": "entropy_models.hyperprior", "hyperprior_fit": "entropy_models.hyperprior_fit",
    "ans": "coders.ans", "rans_torch": "coders.rans_torch", "container": "coders.container",
    "torch_context": "coders.torch_context", "torch_factorized": "coders.torch_factorized",
    "split": "rdgap.split.model", "capture": "rdgap.split.capture",
    "layer_stack": "rdgap.split.layers",
}


def new_name(old: str) -> str | None:
    """The full new name of the full old module name ``old``, or None if it did not move."""
    head, _, tail = old.rpartition(".")
    if head != PACKAGE or tail not in MOVED:
        return None
    new = MOVED[tail]
    return new if new.startswith("rdgap.") else f"{PACKAGE}.{new}"


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of :data:`MOVED` and loads each as its moved module."""

    def find_spec(self, fullname, path=None, target=None):
        if new_name(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = new_name(spec.name)
        # stacklevel 2 skips the import machinery's frames: the warning names the importer
        warnings.warn(f"{spec.name} moved to {new}; the old name is removed in the next "
                      f"release", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        spec.loader_state = module.__spec__  # the import system sets the alias's spec on it
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state  # the moved module keeps its own spec


def install() -> None:
    """Put one :class:`MovedModuleFinder` first on ``sys.meta_path`` (idempotent; first, so
    that a stale file of an old name left by an older install is not imported instead)."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
