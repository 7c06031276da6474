"""The layering of docs/architecture.md, enforced on the source: every import of every module (including
imports inside functions) goes downward or sideways within its layer, and every import inside a function
carries a comment (its line, the line above, or above its block of imports) — which should say the
start-up cost it avoids; that it exists is checked here, what it says is for review.

The source is parsed with `ast`, nothing is imported: the test takes about a second.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("release_requests", "flows", "artifacts", "devservers")

# Lowest first. An entry names a module or a package (and everything in it); the most specific entry wins.
# The root `release_requests` (its __init__) is matched exactly, not as a package.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations",
        (
            "release_requests",
            "release_requests.errors",
            "release_requests.settings",
            "release_requests.config",
            "release_requests.db",
            "release_requests.embedded_pg",
            "release_requests.clock",
            "release_requests.runtime",
            "release_requests.crashpoints",
            "release_requests.installation",
            "release_requests.logs",
            "release_requests.listening",
            "release_requests.access",
            "release_requests.samples",
            "release_requests.documents",  # HTML → PDF for reports and Health Checks
            "release_requests.models",  # every table, for Alembic: imports models only
            "artifacts",  # builds what is shipped; knows nothing of requests or the database
            "devservers",  # local Slack / SMTP / webhook servers for the demo and tests; not product code
        ),
    ),
    ("audit", ("release_requests.audit",)),
    (
        "parties and time",
        ("release_requests.people", "release_requests.customers", "release_requests.sla", "release_requests.routing"),
    ),
    ("notifications", ("release_requests.notifications",)),
    (
        "requests",
        (
            "release_requests.requests",
            "release_requests.healthchecks",
            "release_requests.paging",
            "release_requests.mail",  # the mailbox: what reached it (inbound_mail), IMAP and its cursor
        ),
    ),
    ("releases", ("release_requests.releases",)),
    ("pipeline", ("release_requests.pipeline",)),
    ("reports", ("release_requests.reports",)),
    ("workflows", ("release_requests.workflows",)),
    (
        "interfaces",
        (
            "release_requests.api",
            "release_requests.web",  # the web console and customer portal
            "release_requests.cli",
            "release_requests.server",
            "release_requests.demo",
            "release_requests.update_client",
        ),
    ),
    ("flows", ("flows",)),
]

# Packages that stand apart: they import nothing of the others (artifacts is used by the service and by
# update clients alike; devservers stands in for Slack and a mail server).
STANDALONE = ("artifacts", "devservers")

# The shared schema: any module may import any domain's tables and API shapes.
SHARED_SCHEMA = ("models", "schemas")


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repository
    module: str  # the importing module
    target: str  # the imported module (for `from x import y`, `x.y` when that is a module, else `x`)
    line: int
    lazy: bool  # inside a function
    commented: bool  # a comment on its line(s), the line above, or above the block of imports it is in


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def all_modules() -> set[str]:
    return {module_name(p) for p in source_files()}


def comment_lines(source: str) -> set[int]:
    """Lines holding a comment that says something (not just a linter directive)."""
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if text and not text.lower().startswith(("noqa", "type:", "pragma")):
                lines.add(token.start[0])
    return lines


def imports_of(path: Path, modules: set[str]) -> list[Import]:
    rel = str(path.relative_to(REPO))
    return parse_imports(path.read_text(), rel, module_name(path), path.name == "__init__.py", modules)


def parse_imports(source: str, path: str, module: str, is_package: bool, modules: set[str]) -> list[Import]:
    tree = ast.parse(source)
    comments = comment_lines(source)
    lazy_nodes = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    # a block of consecutive import statements shares the comment above its first line
    block_start: dict[int, int] = {}
    for body in (getattr(n, "body", None) for n in ast.walk(tree)):
        if not isinstance(body, list):
            continue
        start = None
        for statement in body:
            if isinstance(statement, ast.Import | ast.ImportFrom):
                start = statement.lineno if start is None else start
                block_start[id(statement)] = start
            else:
                start = None
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: against this module's package
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        own_lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        above = block_start.get(id(node), node.lineno) - 1
        commented = bool(comments & (own_lines | {node.lineno - 1, above}))
        for target in dict.fromkeys(targets):
            found.append(Import(path, module, target, node.lineno, id(node) in lazy_nodes, commented))
    return found


def ours(target: str) -> bool:
    return target.split(".")[0] in PACKAGES


def layer_of(module: str) -> int | None:
    best, best_length = None, -1
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            matches = module == entry or (entry != "release_requests" and module.startswith(entry + "."))
            if matches and len(entry) > best_length:
                best, best_length = index, len(entry)
    return best


def domain_of(module: str) -> str:
    """The package a module belongs to, for sideways imports inside one package (`release_requests.pipeline`)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "release_requests" else parts[0]


def violation(imp: Import) -> str | None:
    if not ours(imp.target) or domain_of(imp.target) == domain_of(imp.module):
        return None
    if imp.module.split(".")[0] in STANDALONE:
        return f"{imp.module.split('.')[0]} imports nothing of the other packages"
    if imp.target.split(".")[-1] in SHARED_SCHEMA:
        return None
    mine, theirs = layer_of(imp.module), layer_of(imp.target)
    if theirs is None:
        return None  # a name that is not a module of ours (reported by test_every_module_has_a_layer)
    if theirs > mine:
        return f"{LAYERS[mine][0]} may not import {LAYERS[theirs][0]}"
    return None


def every_import() -> list[Import]:
    modules = all_modules()
    return [imp for path in source_files() for imp in imports_of(path, modules)]


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in all_modules() if layer_of(m) is None)
    assert not unplaced, f"declare the layer of {unplaced} in LAYERS (and in docs/architecture.md)"


def test_imports_go_only_downward_or_sideways():
    found = {}
    for imp in every_import():
        why = violation(imp)
        if why is not None:
            found.setdefault((imp.path, imp.target), f"{imp.path}:{imp.line}: {imp.module} → {imp.target}: {why}")
    assert not found, "imports against the layering (docs/architecture.md):\n" + "\n".join(sorted(found.values()))


def test_lazy_imports_say_which_start_up_cost_they_avoid():
    silent = {}
    for imp in every_import():
        if imp.lazy and not imp.commented:
            silent.setdefault((imp.path, imp.target), f"{imp.path}:{imp.line}: import {imp.target}")
    assert not silent, (
        "an import inside a function needs a comment (same line or the line above) saying which start-up cost "
        "it avoids — or belongs at the top of the module:\n" + "\n".join(sorted(silent.values()))
    )


def test_the_checker_sees_lazy_imports_their_comments_and_the_layers():
    source = """
import os
from release_requests.pipeline import line


def f():
    import yaml

    yaml.safe_load("")
    # the CLI starts without the domain: relreq --help stays fast
    from release_requests.requests import lifecycle
    from release_requests.requests.models import ReleaseRequest

    lifecycle.change(ReleaseRequest)
    from . import schemas  # noqa: F401
"""
    modules = {"release_requests.pipeline.line", "release_requests.requests.lifecycle", "release_requests.sla.schemas"}
    found = parse_imports(source, "x.py", "release_requests.sla.service", False, modules)
    summary = [(i.target, i.lazy, i.commented) for i in found]
    assert sorted(summary) == sorted(
        [
            ("os", False, False),
            ("release_requests.pipeline.line", False, False),
            ("yaml", True, False),
            ("release_requests.requests.lifecycle", True, True),
            ("release_requests.requests.models", True, True),  # the same block as the commented one
            ("release_requests.sla.schemas", True, False),  # a linter directive is not a reason
        ]
    )
    by_target = {i.target: violation(i) for i in found}
    assert by_target["release_requests.pipeline.line"] == "parties and time may not import pipeline"
    assert by_target["release_requests.requests.lifecycle"] == "parties and time may not import requests"
    assert by_target["release_requests.requests.models"] is None  # the shared schema
    assert by_target["release_requests.sla.schemas"] is None  # its own package
    assert layer_of("release_requests.workflows.rollout") > layer_of("release_requests.pipeline.line")
    assert layer_of("release_requests") == 0 and layer_of("release_requests.nonexistent") is None
