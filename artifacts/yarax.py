"""YARA-X compilation and scanning with the measured traps handled.

- After a CompileError the compiler silently drops only the bad rule, so we collect
  `errors()` and `warnings()` and refuse the whole set if either is non-empty.
- Serialized rules depend on the order sources were added (measured with yara-x 1.23: same
  order -> byte-identical blob across processes; shuffled order -> different bytes), so sources
  are always added sorted by (namespace, path).
- Serialized blobs carry no format version: `YARA_X_VERSION` goes into every manifest.
- Every rule must carry the metadata the repository policy requires (checked by the compiler
  itself via `allowed_metadata`, whose real signature is
  `(identifier, value_type, required=False, error=False, regexp=None)` — the .pyi stub is wrong).
"""

import io
import re
from contextlib import suppress
from dataclasses import dataclass
from importlib.metadata import version

import yara_x

from artifacts.errors import RuleCompileError

YARA_X_VERSION = version("yara-x")

SEVERITIES = ("low", "medium", "high", "critical")
_REQUIRED_METADATA = {
    "author": None,
    "description": None,
    "severity": f"^({'|'.join(SEVERITIES)})$",
    "created": r"^\d{4}-\d{2}-\d{2}$",
    "reference": None,
}
_RULE_DECL_RE = re.compile(r"^[ \t]*(?:(?:private|global)[ \t]+)*rule[ \t]+([A-Za-z_]\w*)", re.MULTILINE)
_BLOCK_COMMENT_RE = re.compile(r"/\*.*?\*/", re.DOTALL)
_LINE_COMMENT_RE = re.compile(r"//[^\n]*")


@dataclass(frozen=True)
class RuleSource:
    """One `.yar` file: its namespace (family folder), repository-relative path and text."""

    namespace: str
    path: str
    text: str


def compile_rules(sources: list[RuleSource]) -> yara_x.Rules:
    """Compile all sources into one rule set, or raise with every error and warning located."""
    compiler = yara_x.Compiler()
    for ident, regexp in _REQUIRED_METADATA.items():
        compiler.allowed_metadata(ident, yara_x.MetaType.STRING, required=True, regexp=regexp)
    namespace = None
    for source in sorted(sources, key=lambda s: (s.namespace, s.path)):
        if source.namespace != namespace:
            namespace = source.namespace
            compiler.new_namespace(namespace)
        # A CompileError is also recorded in compiler.errors(): keep going to report every broken file.
        with suppress(yara_x.CompileError):
            compiler.add_source(source.text, origin=source.path)
    problems = [*compiler.errors(), *compiler.warnings()]
    if problems:
        raise RuleCompileError([_describe(problem) for problem in problems])
    return compiler.build()


def _describe(problem: dict) -> str:
    """`path:line:column: level[code] title: detail` from a YARA-X diagnostic."""
    label = next((lbl for lbl in problem["labels"] if lbl.get("code_origin")), None)
    where = (
        f"{label['code_origin']}:{label['line']}:{label['column']}"
        if label
        else f"<unknown>:{problem['line']}:{problem['column']}"
    )
    level = label["level"] if label else "error"
    detail = f": {label['text']}" if label and label.get("text") else ""
    return f"{where}: {level}[{problem['code']}] {problem['title']}{detail}"


def rule_names(sources: list[RuleSource]) -> list[str]:
    """`namespace.rule` for every rule declared (comments stripped; the engine offers no listing)."""
    names = []
    for source in sources:
        text = _LINE_COMMENT_RE.sub("", _BLOCK_COMMENT_RE.sub("", source.text))
        names.extend(f"{source.namespace}.{name}" for name in _RULE_DECL_RE.findall(text))
    return sorted(names)


def serialize_rules(rules: yara_x.Rules) -> bytes:
    buffer = io.BytesIO()
    rules.serialize_into(buffer)
    return buffer.getvalue()


def deserialize_rules(blob: bytes) -> yara_x.Rules:
    return yara_x.Rules.deserialize_from(io.BytesIO(blob))


def matching_rules(scanner: yara_x.Scanner, data: bytes) -> list[str]:
    """Sorted `namespace.rule` names that match `data`."""
    return sorted(f"{m.namespace}.{m.identifier}" for m in scanner.scan(data).matching_rules)
