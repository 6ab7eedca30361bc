"""Imports, at build time, every module a plugin imports anywhere.

componentize-py runs the plugin's top level once while it builds and keeps
the interpreter as it is then: a module first imported later (``import json``
inside a function, on an error path) is not in the component and fails at run
time with "No module named". So the SDK reads the plugin's sources while they
are still readable (during the build), finds every ``import`` at any depth,
and imports those modules then. One that cannot be imported at build time is
named with its file and line on stderr, as it will fail the same way at run
time (a guarded ``try: import x`` stays legitimate).
"""

import ast
import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import List, Optional, Set, Tuple


def _imports(tree: ast.AST, package: Optional[str]) -> List[Tuple[str, int, List[str]]]:
    """(absolute module name, line, names imported from it) for each import."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, node.lineno, []))
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                if not package:
                    continue
                try:
                    name = importlib.util.resolve_name("." * node.level + name, package)
                except (ImportError, ValueError):
                    continue
            found.append((name, node.lineno, [a.name for a in node.names if a.name != "*"]))
    return found


def _is_local(module: ModuleType, root: str) -> bool:
    """Whether ``module`` is one of the plugin's own files (scanned too)."""
    path = getattr(module, "__file__", None)
    return bool(path) and os.path.abspath(path).startswith(root + os.sep) and path.endswith(".py")


def modules_imported_by(module: Optional[ModuleType]) -> List[str]:
    """Imports what ``module`` (and the plugin's own modules it imports)
    import anywhere; returns the problems found, each "file:line: ...",
    also written to stderr."""
    path = getattr(module, "__file__", None)
    if not path:
        return []
    root = os.path.dirname(os.path.abspath(path))
    problems: List[str] = []
    seen: Set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        file = os.path.abspath(current.__file__)
        if file in seen:
            continue
        seen.add(file)
        try:
            with open(file, encoding="utf-8") as source:
                tree = ast.parse(source.read(), file)
        except (OSError, SyntaxError, ValueError):
            continue
        package = current.__package__ or None
        for name, line, names in _imports(tree, package):
            try:
                imported = importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - any failure is reported, none is fatal
                problem = f"{os.path.relpath(file, root)}:{line}: import {name}: {type(exc).__name__}: {exc}"
                problems.append(problem)
                print(f"autoheal_sdk: {problem} (it will fail the same way when the plugin runs)", file=sys.stderr)
                continue
            for sub in names:
                if not hasattr(imported, sub):
                    try:
                        importlib.import_module(f"{name}.{sub}")
                    except Exception:  # noqa: BLE001 - a name, not a module
                        pass
            if _is_local(imported, root):
                todo.append(imported)
            for sub in names:
                value = getattr(imported, sub, None)
                if isinstance(value, ModuleType) and _is_local(value, root):
                    todo.append(value)
    return problems
