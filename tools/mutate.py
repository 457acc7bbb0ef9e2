r"""A small AST mutation tester: how many injected bugs do a module's tests catch?

Length (≈480 lines): a hand-run tool kept in one file (mutation operators, runner,
report) so it can be copied and read alone.

Usage (from the repository root; a hand-run tool, not part of ``make test``)::

    .venv/bin/python tools/mutate.py validation/claims.py --module rdgap.validation.claims \
        --sample 60 --seed 0 -- tests/validation/test_claims.py

Each *mutant* is the module with one small change of its syntax tree:

=============  ===============================================================
``binop``      ``+ ↔ -``, ``* ↔ /``, ``// → /``, ``% → //``, ``** → *``
``compare``    ``< ↔ <=``, ``> ↔ >=``, ``== ↔ !=``, ``in ↔ not in``, ``is ↔ is not``
``constant``   a number ``c → c + 1``; ``True ↔ False``
``negate``     the condition of ``if`` / ``while`` / ``x if c else y`` /
               ``assert`` / a comprehension's ``if`` → ``not (...)``
``boolop``     ``and ↔ or``
``unary``      ``not x → x``, ``-x → x``
``raise``      ``raise ...`` → ``pass``
=============  ===============================================================

Strings, f-strings (report text) and annotations are not mutated. For every
mutant the tests given after ``--`` run with ``pytest -x -q --assert=plain``
in a forked child whose import of ``--module`` loads the mutated source (an
import hook: the file on disk is never touched, so a shared working tree stays
intact). A mutant is *killed* when the tests fail (or time out), *survives*
when they pass. The unmutated module is run first and must pass; that run also
records (``sys.settrace``) which tests execute each line of the module, and
each mutant then runs only the test files whose tests executed its lines (all
tests for lines run at import; none, so it survives, for lines no test
reaches); ``--all-tests`` runs every test on every mutant instead. The score
printed at the end is ``killed / (mutants run - excluded)``; ``--exclude FILE``
takes lines ``REGEX  # reason`` matched against the description of a mutant
that *survived* (an equivalent mutant, printed with the reason; a matching
mutant that is killed counts as killed). ``--list`` only lists the mutants;
``--only`` reruns chosen mutants or an earlier run's survivors; ``--json PATH``
writes every outcome. Scores and usage: ``docs/testing-the-claims.md``.

Over 400 lines on purpose: the tool is one self-contained script (run as
``python tools/mutate.py``, not part of the installed package).
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib.abc
import importlib.machinery
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

_BINOPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
           ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
_COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
            ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%", ast.Pow: "**", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
           ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in",
           ast.Is: "is", ast.IsNot: "is not", ast.And: "and", ast.Or: "or"}
#: Fields whose subtrees are never mutated (type annotations).
_SKIPPED_FIELDS = {"annotation", "returns", "type_comment"}


@dataclass(frozen=True)
class Mutant:
    """One mutation point: ``index`` in the module's deterministic traversal."""

    index: int
    operator: str
    line: int
    description: str
    end_line: int = 0


def _children(node):
    for field, value in ast.iter_fields(node):
        if field in _SKIPPED_FIELDS:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, ast.AST):
                    yield (field, i), item
        elif isinstance(value, ast.AST):
            yield (field, None), value


def _is_docstring(parent, node) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            and isinstance(parent, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef,
                                    ast.ClassDef)))


def _mutations(node):
    """``(operator, label, apply)`` for each mutation of ``node`` itself."""
    out = []
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINOPS:
        new = _BINOPS[type(node.op)]
        out.append(("binop", f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[new]}",
                    lambda n, new=new: setattr(n, "op", new()) or n))
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _COMPARE:
                new = _COMPARE[type(op)]

                def apply(n, i=i, new=new):
                    n.ops[i] = new()
                    return n
                out.append(("compare", f"{_SYMBOL[type(op)]} -> {_SYMBOL[new]}", apply))
    if isinstance(node, ast.Constant) and not isinstance(node.value, (str, bytes)) \
            and node.value is not None and node.value is not Ellipsis:
        if isinstance(node.value, bool):
            out.append(("constant", f"{node.value} -> {not node.value}",
                        lambda n: setattr(n, "value", not n.value) or n))
        elif isinstance(node.value, (int, float)):
            out.append(("constant", f"{node.value!r} -> {node.value + 1!r}",
                        lambda n: setattr(n, "value", n.value + 1) or n))
    if isinstance(node, (ast.If, ast.While, ast.IfExp, ast.Assert)):
        def apply(n):
            n.test = ast.UnaryOp(op=ast.Not(), operand=n.test)
            return n
        out.append(("negate", "condition -> not (condition)", apply))
    if isinstance(node, ast.comprehension):
        for i in range(len(node.ifs)):
            def apply(n, i=i):
                n.ifs[i] = ast.UnaryOp(op=ast.Not(), operand=n.ifs[i])
                return n
            out.append(("negate", "comprehension if -> not (...)", apply))
    if isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        out.append(("boolop", f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[new]}",
                    lambda n, new=new: setattr(n, "op", new()) or n))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        out.append(("unary", f"{'not' if isinstance(node.op, ast.Not) else '-'}x -> x",
                    lambda n: n.operand))
    if isinstance(node, ast.Raise):
        out.append(("raise", "raise -> pass", lambda n: ast.copy_location(ast.Pass(), n)))
    return out


def _walk(tree):
    """Every mutation point in a fixed order: ``(path, operator, label, apply, node)``."""
    stack = [((), tree, None, 0)]
    while stack:
        path, node, parent, line = stack.pop()
        line = getattr(node, "lineno", line)
        if isinstance(node, ast.JoinedStr) or _is_docstring(parent, node):
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        for operator, label, apply in _mutations(node):
            yield path, operator, label, apply, node, line
        stack.extend(reversed([(path + (step,), child, node, line)
                               for step, child in _children(node)]))


def _segment(source: str, node) -> str:
    text = ast.get_source_segment(source, node) or ast.unparse(node)
    text = " ".join(text.split())
    return text if len(text) <= 70 else text[:67] + "..."


def list_mutants(source: str) -> list[Mutant]:
    """Every mutant of ``source``, in traversal order."""
    tree = ast.parse(source)
    return [Mutant(i, operator, line,
                   f"L{line} {operator}: {label} in `{_segment(source, node)}`",
                   max(line, getattr(node, "end_lineno", None) or line))
            for i, (_, operator, label, _, node, line) in enumerate(_walk(tree))]


def mutant_source(source: str, index: int) -> str:
    """``source`` with mutation ``index`` applied (``ast.unparse`` of the changed tree)."""
    tree = ast.parse(source)
    for i, (path, _, _, apply, _, _) in enumerate(_walk(copy.deepcopy(tree))):
        if i != index:
            continue
        parent, node = None, tree
        for field, position in path:
            parent = node
            node = getattr(node, field) if position is None else getattr(node, field)[position]
        new = apply(node)
        if new is not node:
            field, position = path[-1]
            if position is None:
                setattr(parent, field, new)
            else:
                getattr(parent, field)[position] = new
        return ast.unparse(ast.fix_missing_locations(tree))
    raise ValueError(f"index: expected 0 <= index < number of mutants, got {index}")


class _Loader(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``name`` from ``source`` instead of the file on disk."""

    def __init__(self, name: str, path: str, source: str):
        self.name, self.path, self.source, self.used = name, path, source, False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=self.path)
        spec.has_location = True
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        self.used = True
        module.__file__ = self.path
        exec(compile(self.source, self.path, "exec"), module.__dict__)


_NOT_LOADED = 99
#: The "test" that executes module-level lines (at import, during collection).
IMPORT_TIME = "<import>"


class _Selector:
    """A pytest plugin: keeps only the tests in ``selected`` (all when None)."""

    def __init__(self, selected):
        self.selected = selected

    def pytest_collection_modifyitems(self, config, items):
        if self.selected is None:
            return
        kept = [item for item in items if item.nodeid in self.selected]
        dropped = [item for item in items if item.nodeid not in self.selected]
        items[:] = kept
        if dropped:
            config.hook.pytest_deselected(items=dropped)


class _LineRecorder:
    """A pytest plugin: which lines of ``path`` each test executes (``sys.settrace``)."""

    def __init__(self, path: str):
        self.path, self.current, self.lines = path, IMPORT_TIME, {}

    def _trace(self, frame, event, arg):
        if frame.f_code.co_filename != self.path:
            return None
        self.lines.setdefault(frame.f_lineno, set()).add(self.current)
        return self._local

    def _local(self, frame, event, arg):
        if event == "line":
            self.lines.setdefault(frame.f_lineno, set()).add(self.current)
        return self._local

    def pytest_collection_modifyitems(self, items):
        self.order = [item.nodeid for item in items]

    def pytest_runtest_protocol(self, item, nextitem):
        self.current = item.nodeid

    def start(self):
        sys.settrace(self._trace)


def _child(name: str, path: str, source: str, pytest_args: list[str], quiet: bool,
           selected=None, record: str | None = None) -> int:
    if quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    sys.modules.pop(name, None)
    loader = _Loader(name, path, source)
    sys.meta_path.insert(0, loader)
    import pytest
    plugins = [_Selector(selected)]
    recorder = None
    if record is not None:
        recorder = _LineRecorder(path)
        plugins.append(recorder)
        recorder.start()
    # --assert=plain: pytest's rewriting import hook would otherwise load rdgap modules
    # (its plugin's package) ahead of the mutant loader
    code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--assert=plain",
                            *pytest_args], plugins=plugins))
    sys.settrace(None)
    if recorder is not None:
        with open(record, "w", encoding="utf-8") as handle:
            json.dump({"order": getattr(recorder, "order", []),
                       "lines": {str(k): sorted(v) for k, v in recorder.lines.items()}},
                      handle)
    if not loader.used:
        return _NOT_LOADED
    return code


def run_one(name: str, path: str, source: str, pytest_args: list[str], timeout: float,
            quiet: bool = True, selected=None,
            record: str | None = None) -> tuple[int | None, float]:
    """Exit status of the tests against ``source`` (``None`` on timeout) and seconds taken.

    ``selected``: node ids of the tests to run (None: all); ``record``: a file to write
    which lines of ``path`` each test executed (the baseline run)."""
    start = time.monotonic()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:                                             # the child never returns
        try:
            code = _child(name, path, source, pytest_args, quiet, selected, record)
        except BaseException:                                # noqa: BLE001 - report, exit
            code = 3
        os._exit(code)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), time.monotonic() - start
        if time.monotonic() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, time.monotonic() - start
        time.sleep(0.05)


def covering_tests(coverage: dict, first: int, last: int) -> set[str] | None:
    """The tests of every test file that executed any of lines ``first..last`` (None:
    lines run at import, so every test may depend on them)."""
    tests = set()
    for line in range(first, last + 1):
        tests |= set(coverage["lines"].get(str(line), ()))
    if IMPORT_TIME in tests:
        return None
    # A module-scoped fixture runs in the first test that asks for it, yet every test of
    # that file may read what it computed: take every test of each file reached.
    files = {test.split("::")[0] for test in tests}
    return {test for test in coverage["order"] if test.split("::")[0] in files} | tests


def _exclusions(path: str | None) -> list[tuple[re.Pattern, str]]:
    if path is None:
        return []
    out = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            pattern, _, reason = line.partition("  # ")
            out.append((re.compile(pattern.strip()), reason.strip() or "no reason given"))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1:]
    else:
        pytest_args = []
    parser = argparse.ArgumentParser(prog="tools/mutate.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="the module's file, e.g. validation/claims.py")
    parser.add_argument("--module", required=True,
                        help="its import name, e.g. rdgap.validation.claims")
    parser.add_argument("--sample", type=int, default=None,
                        help="run a random sample of this many mutants (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds per mutant; a mutant that runs longer is killed")
    parser.add_argument("--exclude", default=None,
                        help="file of 'REGEX  # reason' lines: equivalent mutants")
    parser.add_argument("--preimport", default="numpy,scipy.stats,torch",
                        help="comma-separated modules imported once before forking (never "
                             "the module itself or one that imports it)")
    parser.add_argument("--all-tests", action="store_true",
                        help="run every test on every mutant (default: only the tests that "
                             "executed the mutated lines in the baseline run)")
    parser.add_argument("--only", default=None,
                        help="run only these mutants: comma-separated indexes (see --list), "
                             "or a --json file of an earlier run (its survivors)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--json", default=None, help="write every outcome to this file")
    parser.add_argument("--verbose", action="store_true", help="show the tests' output")
    args = parser.parse_args(argv)
    if not pytest_args and not args.list:
        parser.error("give the tests to run after '--', e.g. -- tests/validation/test_claims.py")
    if args.sample is not None and args.sample < 1:
        parser.error(f"--sample: expected a positive count, got {args.sample}")
    with open(args.path, encoding="utf-8") as handle:
        source = handle.read()
    mutants = list_mutants(source)
    if args.list:
        for m in mutants:
            print(f"{m.index:4d} {m.description}")
        print(f"{len(mutants)} mutants")
        return 0
    chosen = mutants if args.sample is None or args.sample >= len(mutants) else \
        sorted(random.Random(args.seed).sample(mutants, args.sample), key=lambda m: m.index)
    if args.only is not None:
        if os.path.exists(args.only):
            with open(args.only, encoding="utf-8") as handle:
                earlier = json.load(handle)["outcomes"]
            wanted = {o["index"] for o in earlier if o["outcome"] == "survived"}
        else:
            wanted = {int(i) for i in args.only.split(",") if i.strip()}
        chosen = [m for m in chosen if m.index in wanted]
    excluded = _exclusions(args.exclude)
    for name in filter(None, args.preimport.split(",")):
        try:
            __import__(name)
        except ImportError:
            pass
    if args.module in sys.modules:
        print(f"--preimport: importing {args.preimport} imported {args.module} itself; its "
              f"mutants would not be seen: leave out what imports it", file=sys.stderr)
        return 2
    path = os.path.abspath(args.path)
    coverage = None
    with tempfile.TemporaryDirectory() as folder:
        record = None if args.all_tests else os.path.join(folder, "lines.json")
        code, seconds = run_one(args.module, path, source, pytest_args, args.timeout,
                                quiet=not args.verbose, record=record)
        if record is not None and code == 0:
            with open(record, encoding="utf-8") as handle:
                coverage = json.load(handle)
    if code != 0:
        print(f"the tests fail on the unmutated module (exit status {code}"
              f"{', module not imported by them' if code == _NOT_LOADED else ''}); "
              f"fix that first", file=sys.stderr)
        return 2
    print(f"baseline passes in {seconds:.1f} s; {len(chosen)} of {len(mutants)} mutants "
          f"(seed {args.seed})", flush=True)
    outcomes = []
    for m in chosen:
        selected = None if coverage is None else covering_tests(coverage, m.line, m.end_line)
        if selected is not None and not selected:          # no test runs this line
            code, seconds = 0, 0.0
        else:
            code, seconds = run_one(args.module, path, mutant_source(source, m.index),
                                    pytest_args, args.timeout, quiet=not args.verbose,
                                    selected=selected)
        outcome = ("timeout" if code is None else "survived" if code == 0 else
                   "error" if code in (_NOT_LOADED, 4, 5) else "killed")
        reason = next((r for pattern, r in excluded if pattern.search(m.description)), None)
        if outcome == "survived" and reason is not None:    # only a survivor is excused
            outcome = "excluded"
            print(f"  excluded  {m.description} — equivalent: {reason}", flush=True)
        outcomes.append(asdict(m) | {"outcome": outcome, "exit_status": code,
                                     "reason": reason if outcome == "excluded" else None,
                                     "seconds": round(seconds, 1),
                                     "tests_run": "all" if selected is None else len(selected)})
        if outcome != "excluded":
            print(f"  {outcome:9s} {m.description} ({seconds:.0f} s, "
                  f"{'all' if selected is None else len(selected)} tests)", flush=True)
    counted = [o for o in outcomes if o["outcome"] in ("killed", "timeout", "survived")]
    killed = sum(o["outcome"] in ("killed", "timeout") for o in outcomes)
    errors = sum(o["outcome"] == "error" for o in outcomes)
    score = killed / len(counted) if counted else float("nan")
    print(f"score: {killed} killed of {len(counted)} = {score:.1%} "
          f"({sum(o['outcome'] == 'excluded' for o in outcomes)} excluded as equivalent, "
          f"{errors} errors, {len(chosen)} sampled of {len(mutants)})")
    for o in outcomes:
        if o["outcome"] == "survived":
            print(f"  SURVIVED {o['description']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"path": args.path, "module": args.module, "tests": pytest_args,
                       "seed": args.seed, "total_mutants": len(mutants), "killed": killed,
                       "counted": len(counted), "score": score, "outcomes": outcomes},
                      handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
