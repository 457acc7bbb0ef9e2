r"""Rebuilding a codec in a fresh process: :func:`recipe` (here) and :func:`rebuild` (there).

The ``cross-process`` and ``crafted-headers`` properties need the *same* codec in
another interpreter. :func:`recipe` takes the first of these that the codec
offers, the way its users would move it between processes:

1. a ``factory`` declaration ``("package.module:callable", args, kwargs)``:
   the child imports the callable and calls it (``args``/``kwargs`` are
   pickled). Explicit, and right for a codec built from files;
2. the codec's own persistence: ``codec.save(folder)`` here and
   ``type(codec).load(folder)`` there (rdgap's fitted codecs, and any codec
   with the same pair; rdgap's torch rANS and zstd-symbols codecs through the
   saved codec they wrap, the adapter's ``rebuild_from``);
3. pickling (``pickle.dumps(codec)``). A member that does not pickle
   (constriction's entropy models, a zstd context) is rebuilt in
   ``__setstate__`` from the tables it came from.

An rdgap codec wrapped by :func:`rdgap.testing.adapt` is rebuilt from the
codec it wraps and adapted again in the child. Without any of the three the
properties are reported as *not checked*, with the reason. The child gets this
process's ``sys.path``; a class whose module it cannot import by name (a test
file imported from its path) is loaded from the file this process loaded it
from; a class defined in ``__main__`` is not rebuilt (the child would run the
script again).

Examples
--------
>>> import collections
>>> how = recipe(collections.Counter(a=1))
>>> print(how.how, how.describe())
pickle pickling (pickle.dumps / pickle.loads)
>>> print(rebuild(how.payload()))
Counter({'a': 1})
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import pickle
import sys
import tempfile
from dataclasses import dataclass, field


@dataclass
class Recipe:
    """How to rebuild a codec in another process.

    Attributes
    ----------
    how : str
        ``"factory"``, ``"load"`` or ``"pickle"``.
    blob : bytes
        The pickled factory call, ``(module, qualname, folder)`` or codec.
    adapt : bool
        Wrap the rebuilt codec with :func:`rdgap.testing.adapt` in the child.
    folder : TemporaryDirectory or None
        The folder ``save`` wrote (kept until :meth:`close`).
    """

    how: str
    blob: bytes
    adapt: bool = False
    folder: object = None
    target: str = ""
    modules: dict = field(default_factory=dict)

    def describe(self) -> str:
        return {"factory": f"the declared factory {self.target}",
                "load": f"the codec's own save/load ({self.target}.load)",
                "pickle": "pickling (pickle.dumps / pickle.loads)"}[self.how]

    def payload(self) -> dict:
        """What the child needs (only builtins at the outer level)."""
        return {"how": self.how, "blob": self.blob, "adapt": self.adapt,
                "sys_path": [p for p in sys.path if isinstance(p, str)],
                "modules": self.modules, "cwd": os.getcwd()}

    def close(self) -> None:
        if self.folder is not None:
            self.folder.cleanup()
            self.folder = None


def _module_files() -> dict:
    """Modules loaded from a ``.py`` file outside the interpreter's own tree: the child
    loads one of them from its file when it cannot import it by name."""
    prefixes = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)})
    files = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name == "__main__" or not path or not path.endswith(".py"):
            continue
        if not os.path.realpath(path).startswith(prefixes):
            files[name] = path
    return files


def recipe(codec) -> Recipe | str:
    """The :class:`Recipe` that rebuilds ``codec`` in another process, or why there is none."""
    from .adapters import HiddenStateAdapter

    inner, wrapped = codec, False
    if isinstance(codec, HiddenStateAdapter):
        inner, wrapped = codec.codec, True
    reasons = []
    factory = getattr(codec, "factory", None)
    if factory is not None:
        try:
            target, args, kwargs = factory
            module, _, attr = str(target).partition(":")
            if not module or not attr:
                raise ValueError
            blob = pickle.dumps((str(target), tuple(args), dict(kwargs)))
        except (TypeError, ValueError) as error:
            raise ValueError(f"codec.factory: expected ('package.module:callable', args, kwargs) "
                             f"with picklable arguments, got {factory!r} ({error})") from None
        return Recipe("factory", blob, adapt=True, target=str(target), modules=_module_files())
    owner = type(inner)
    part, wrap = inner, None
    if wrapped and getattr(codec, "rebuild_from", None) is not None:
        part, kwargs = codec.rebuild_from           # the saved codec this one wraps
        wrap = (owner.__module__, owner.__qualname__, dict(kwargs))
    if owner.__module__ == "__main__":
        return (f"the codec's class {owner.__qualname__} is defined in __main__, which a fresh "
                f"process cannot import; define it in a module or declare factory = "
                f"('module:callable', args, kwargs)")
    if callable(getattr(part, "save", None)) and callable(getattr(type(part), "load", None)):
        folder = tempfile.TemporaryDirectory(prefix="rdgap-rebuild-")
        kind = type(part)
        try:
            part.save(folder.name)
            blob = pickle.dumps((kind.__module__, kind.__qualname__, folder.name, wrap))
            return Recipe("load", blob, adapt=wrapped, folder=folder,
                          target=f"{kind.__module__}.{kind.__qualname__}",
                          modules=_module_files())
        except Exception as error:  # noqa: BLE001 - fall back to pickling, keep the reason
            folder.cleanup()
            reasons.append(f"save() raised {type(error).__name__}: {error}")
    try:
        blob = pickle.dumps(inner)
    except Exception as error:  # noqa: BLE001 - reported as the reason
        reasons.append(f"pickling raised {type(error).__name__}: {error}")
        return ("the codec cannot be rebuilt in another process: it declares no factory, has "
                "no save/load pair, and " + "; ".join(reasons) + " (declare factory = "
                "('module:callable', args, kwargs), or make it picklable: rebuild members "
                "that do not pickle in __setstate__)")
    return Recipe("pickle", blob, adapt=wrapped, target=owner.__qualname__,
                  modules=_module_files())


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, modules: dict):
        super().__init__(io.BytesIO(data))
        self.modules = modules

    def find_class(self, module, name):
        _import(module, self.modules)
        return super().find_class(module, name)


def _import(name: str, files: dict):
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except ImportError:
        if name not in files:
            raise
    spec = importlib.util.spec_from_file_location(name, files[name])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _attribute(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def rebuild(payload: dict):
    """The codec a :meth:`Recipe.payload` describes (run in the child)."""
    for path in reversed(payload.get("sys_path", [])):
        if path not in sys.path:
            sys.path.insert(0, path)
    modules = payload.get("modules", {})
    if payload["how"] == "factory":
        target, args, kwargs = _Unpickler(payload["blob"], modules).load()
        module, _, attr = target.partition(":")
        codec = _attribute(_import(module, modules), attr)(*args, **kwargs)
    elif payload["how"] == "load":
        module, qualname, folder, wrap = pickle.loads(payload["blob"])
        codec = _attribute(_import(module, modules), qualname).load(folder)
        if wrap is not None:
            codec = _attribute(_import(wrap[0], modules), wrap[1])(codec, **wrap[2])
    else:
        codec = _Unpickler(payload["blob"], modules).load()
    if payload.get("adapt"):
        from .adapters import adapt
        codec = adapt(codec)
    return codec
