"""Every `>>>` example in rdgap's docstrings runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ["rdgap", "rdgap.bounds", "rdgap.codecs", "rdgap.codecs.transforms",
            "rdgap.codecs.quantizers", "rdgap.codecs.entropy_models", "rdgap.codecs.coders",
            "rdgap.proofs", "rdgap.validation", "rdgap.testing"]


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.iter_modules(module.__path__, package + "."):
            if not info.ispkg and not info.name.endswith("__main__"):
                # deprecated aliases of moved modules are the moved module itself
                if importlib.import_module(info.name).__name__ == info.name:
                    names.append(info.name)
    return sorted(set(names))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_examples_exist():
    """The catalogue's promise: the bound functions carry runnable examples."""
    finder = doctest.DocTestFinder()
    count = sum(len(t.examples) for name in _modules()
                for t in finder.find(importlib.import_module(name)))
    assert count > 0
