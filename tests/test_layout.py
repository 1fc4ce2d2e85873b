"""The shape of the code, read from its syntax trees (nothing is imported):

(a) the rooms of ``scheduler/`` import one way: web -> beat, runs, alerts -> schedules ->
    policies, with the shared bottom modules under all of them (see ``scheduler/__init__.py``);
(b) no import cycles between modules;
(c) no private name (``_name``) reached across modules;
(d) no imports of the apps' modules inside functions, but for the few listed with a reason;
(e) ``config/`` imports no app (settings name the apps' hooks by dotted path), and the
    catalog imports nothing from the scheduler.

Each failure names the importing module, its line and what it imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = ("config", "jobs_catalog", "scheduler")

#: Modules every room may import: they import no room themselves.
SHARED = {
    "scheduler.background",
    "scheduler.clock",
    "scheduler.db",
    "scheduler.failpoints",
    "scheduler.formatting",
    "scheduler.internal_tasks",
    "scheduler.metrics",
    "scheduler.secret_field",
}
#: Which rooms each room may import (besides itself and SHARED).
ROOM_MAY_IMPORT: dict[str, set[str]] = {
    "policies": set(),
    "schedules": {"policies"},
    "runs": {"schedules", "policies"},
    "beat": {"runs", "schedules", "policies"},
    "alerts": {"runs", "schedules", "policies"},
    "web": {"beat", "runs", "alerts", "schedules", "policies"},
}
#: The only modules of runs/ that beat and alerts may import, and why.
RUNS_OPEN_TO = {
    "beat": {
        "scheduler.runs.outbox": "beat commits and publishes its occurrences through the outbox",
        "scheduler.runs.messages": "the message of a run, which the outbox sends",
        "scheduler.runs.models": "the runs beat records (JobRun)",
        "scheduler.runs.events": "beat announces the runs it will not run (missed, skipped)",
        "scheduler.runs.publisher": "beat forks the publisher processes the outbox sends with",
        "scheduler.runs.reaper": "beat's loop runs the reaper of lost runs",
    },
    "alerts": {
        "scheduler.runs.events": "alerting hears about runs through the run events only",
        "scheduler.runs.models": "the runs an incident names (JobRun)",
        "scheduler.runs.redaction": "alert texts masked as the run history is",
    },
}
#: Modules that may import web/ (the admin site is registered from there; models gathers
#: every room's models, the API tokens among them).
WEB_IMPORTERS = {"scheduler.admin", "scheduler.apps", "scheduler.models"}
#: Third-party packages a policy must not import: policies are pure.
IMPURE = ("django", "django_celery_beat", "celery", "kombu", "jobs_catalog")

#: (module, function) -> why importing an app's module inside that function is right.
LOCAL_IMPORTS_ALLOWED = {
    ("scheduler.apps", "ready"): "AppConfig.ready(): models are loaded only then",
    ("jobs_catalog.apps", "ready"): "AppConfig.ready(): models are loaded only then",
    ("scheduler.beat", "__getattr__"): (
        "scheduler.beat:DatabaseScheduler, the path CELERY_BEAT_SCHEDULER names, is loaded "
        "lazily: the class needs Django's models, and beat's other modules are imported "
        "where they must not be loaded"
    ),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    line: int
    target: str  # the module imported (a submodule when a name is one)
    name: str  # the name imported from it ("" for `import x`)
    function: str | None  # the enclosing function, when inside one
    typing_only: bool  # under `if TYPE_CHECKING:`
    bound: str = ""  # the local name bound to the imported module, if one is

    def where(self) -> str:
        return f"{self.module}:{self.line}"

    def what(self) -> str:
        return f"`from {self.target} import {self.name}`" if self.name else f"`{self.target}`"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def app_files() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


FILES = app_files()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in FILES.items()}


def is_package(module: str) -> bool:
    return FILES[module].name == "__init__.py"


def absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package(module) else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _walk(
    node: ast.AST, function: str | None = None, typing_only: bool = False
) -> Iterator[tuple[ast.AST, str | None, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, function, typing_only
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _walk(child, function or child.name, typing_only)
        elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for body in child.body:
                yield body, function, True
                yield from _walk(body, function, True)
            for body in child.orelse:
                yield body, function, typing_only
                yield from _walk(body, function, typing_only)
        else:
            yield from _walk(child, function, typing_only)


def imports_of(module: str) -> list[Import]:
    found = []
    for node, function, typing_only in _walk(TREES[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or ""
                found.append(
                    Import(module, node.lineno, alias.name, "", function, typing_only, bound)
                )
        elif isinstance(node, ast.ImportFrom):
            base = absolute(module, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in FILES:  # a submodule
                    target, name, bound = sub, "", alias.asname or alias.name
                else:
                    target, name, bound = base, alias.name, ""
                found.append(
                    Import(module, node.lineno, target, name, function, typing_only, bound)
                )
    return found


IMPORTS = {module: imports_of(module) for module in FILES}


def all_imports() -> Iterator[Import]:
    for found in IMPORTS.values():
        yield from found


def ours(target: str) -> bool:
    return target.split(".")[0] in APPS


def room_of(module: str) -> str:
    """policies, schedules, beat, runs, alerts, web; "shared" for SHARED; "top" for the
    modules that gather the rooms (apps, admin, models, checks, jobs, management...)."""
    if module in SHARED:
        return "shared"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ROOM_MAY_IMPORT:
        return parts[1]
    return "top"


def check(rule: str, problems: list[tuple[str, str]]) -> None:
    """``problems``: (where, message); fails naming each, rule ``rule``."""
    if problems:
        lines = sorted(f"{where}: ({rule}) {message}" for where, message in problems)
        pytest.fail("\n".join(["", *lines]), pytrace=False)


# --- (a) rooms ----------------------------------------------------------------------------


def room_problem(imp: Import) -> str | None:
    source, target = room_of(imp.module), room_of(imp.target)
    web = imp.target == "scheduler.web" or imp.target.startswith("scheduler.web.")
    if web and source != "web" and imp.module not in WEB_IMPORTERS:
        return "only web/, scheduler/admin.py and scheduler/apps.py import web/"
    if source == "policies":
        if imp.target.split(".")[0] in IMPURE:
            return "policies are pure: no Django, Celery or catalog"
        if imp.target.startswith("scheduler.") and target != "policies":
            return "policies import no other part of the scheduler"
        return None
    if not imp.target.startswith("scheduler") or source == "top" or target == source:
        return None
    if target == "top":
        return f"{source}/ imports {imp.target}, which gathers the rooms (import the room instead)"
    if source == "shared":
        return "a shared bottom module imports no room"
    if target == "shared":
        return None
    allowed = ROOM_MAY_IMPORT[source]
    if target not in allowed:
        rooms = ", ".join(sorted(allowed)) or "no room"
        return f"{source}/ may import only {rooms} (and the shared modules)"
    if target == "runs" and source in RUNS_OPEN_TO and imp.target not in RUNS_OPEN_TO[source]:
        return f"{source}/ may import from runs/ only {', '.join(sorted(RUNS_OPEN_TO[source]))}"
    return None


def test_rooms_import_one_way() -> None:
    problems = []
    for imp in all_imports():
        if imp.module.startswith("scheduler") and (problem := room_problem(imp)):
            problems.append((imp.where(), f"{imp.module} imports {imp.target}: {problem}"))
    check("a", problems)


def test_every_room_is_known() -> None:
    rooms = {p.name for p in (ROOT / "scheduler").iterdir() if (p / "__init__.py").exists()}
    assert rooms - {"management", "migrations"} == set(ROOM_MAY_IMPORT), (
        "a new package in scheduler/: give it a place in ROOM_MAY_IMPORT"
    )
    assert all(m in FILES for m in SHARED)


# --- (b) cycles ---------------------------------------------------------------------------


def import_graph() -> dict[str, dict[str, Import]]:
    """Module -> module it imports at import time -> the import. Importing ``a.b.c`` also
    runs ``a/__init__.py`` and ``a/b/__init__.py`` (unless the importer is inside them)."""
    graph: dict[str, dict[str, Import]] = {module: {} for module in FILES}
    for imp in all_imports():
        if imp.function or imp.typing_only or not ours(imp.target):
            continue
        parts = imp.target.split(".")
        for i in range(1, len(parts) + 1):
            target = ".".join(parts[:i])
            inside = imp.module == target or imp.module.startswith(target + ".")
            if target in FILES and not inside:
                graph[imp.module].setdefault(target, imp)
    return graph


def cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    graph = import_graph()
    problems = []
    for component in cycles(graph):
        members = set(component)
        edges = [
            f"{imp.where()} imports {target}"
            for module in component
            for target, imp in sorted(graph[module].items())
            if target in members
        ]
        problems.append((component[0], f"cycle {' <-> '.join(component)}: {'; '.join(edges)}"))
    check("b", problems)


def test_the_cycle_finder_finds_a_cycle() -> None:
    a = Import("a", 1, "b", "", None, False)
    b = Import("b", 1, "a", "", None, False)
    assert cycles({"a": {"b": a}, "b": {"a": b}, "c": {"a": a}}) == [["a", "b"]]


# --- (c) private names ------------------------------------------------------------------


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_names_across_modules() -> None:
    problems = []
    for module in FILES:
        for imp in IMPORTS[module]:
            if ours(imp.target) and imp.target != module and is_private(imp.name):
                problems.append((imp.where(), f"{module} imports {imp.name} from {imp.target}"))
        aliases = {i.bound: i.target for i in IMPORTS[module] if i.bound and ours(i.target)}
        for node in ast.walk(TREES[module]):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and is_private(node.attr)
            ):
                target = aliases[node.value.id]
                problems.append(
                    (f"{module}:{node.lineno}", f"{module} uses {node.attr} of {target}")
                )
    check("c", problems)


# --- (d) imports inside functions ---------------------------------------------------------


def test_no_local_imports_of_the_apps() -> None:
    problems = []
    for imp in all_imports():
        if not imp.function or imp.typing_only or not ours(imp.target):
            continue
        if (imp.module, imp.function) in LOCAL_IMPORTS_ALLOWED:
            continue
        problems.append(
            (
                imp.where(),
                f"{imp.module}:{imp.function} imports {imp.target} inside a function",
            )
        )
    check("d", problems)


# --- (e) config and the catalog -------------------------------------------------------------


def test_config_imports_no_app_and_the_catalog_not_the_scheduler() -> None:
    problems = []
    for imp in all_imports():
        app = imp.target.split(".")[0]
        if imp.module.startswith("config") and app in ("jobs_catalog", "scheduler"):
            problems.append(
                (imp.where(), f"{imp.module} imports {imp.what()}: name it by dotted path")
            )
        if imp.module.startswith("jobs_catalog") and app == "scheduler":
            problems.append((imp.where(), f"{imp.module} imports {imp.what()}"))
    check("e", problems)
