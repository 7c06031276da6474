"""YARA-X compilation: every error and warning refuses the set, located as file:line:column."""

import pytest

from artifacts.errors import RuleCompileError
from artifacts.yarax import RuleSource, compile_rules, rule_names, serialize_rules

META = 'meta: author = "a" description = "d" severity = "low" created = "2026-01-01" reference = "r"'


def rule(name: str, condition: str = "$a", strings: str = '$a = "marker-abcdef"') -> str:
    return f"rule {name} {{\n  {META}\n  strings: {strings}\n  condition: {condition}\n}}\n"


def test_valid_rules_compile():
    rules = compile_rules([RuleSource("trojan", "rules/trojan/a.yar", rule("A"))])
    assert serialize_rules(rules)


def test_syntax_error_names_file_line_column_and_keeps_other_errors():
    sources = [
        RuleSource("trojan", "rules/trojan/x.yar", rule("Ok") + rule("Bad", condition="$a and")),
        RuleSource("worm", "rules/worm/y.yar", rule("Bad2", condition="$a or")),
    ]
    with pytest.raises(RuleCompileError) as exc:
        compile_rules(sources)
    assert exc.value.diagnostics[0].startswith("rules/trojan/x.yar:10:1: error[E001] syntax error")
    assert exc.value.diagnostics[1].startswith("rules/worm/y.yar:")
    assert len(exc.value.diagnostics) == 2


def test_warning_fails_the_set():
    source = RuleSource("trojan", "rules/trojan/w.yar", rule("W", condition="$a and 1"))
    with pytest.raises(RuleCompileError, match=r"rules/trojan/w\.yar:4:21: warning\[non_bool_expr\]"):
        compile_rules([source])


def test_duplicate_rule_name_in_namespace_fails_but_other_namespace_is_fine():
    dup = [
        RuleSource("trojan", "rules/trojan/a.yar", rule("Same")),
        RuleSource("trojan", "rules/trojan/b.yar", rule("Same")),
    ]
    with pytest.raises(RuleCompileError, match=r"rules/trojan/b\.yar:1:6: error\[E012\] duplicate rule `Same`"):
        compile_rules(dup)
    compile_rules(
        [RuleSource("trojan", "rules/trojan/a.yar", rule("Same")), RuleSource("worm", "rules/worm/b.yar", rule("Same"))]
    )


def test_missing_or_invalid_metadata_fails():
    bare = 'rule NoMeta { strings: $a = "marker-abcdef" condition: $a }\n'
    bad_severity = rule("Sev").replace('severity = "low"', 'severity = "urgent"')
    with pytest.raises(RuleCompileError) as exc:
        compile_rules([RuleSource("x", "rules/x/a.yar", bare), RuleSource("x", "rules/x/b.yar", bad_severity)])
    text = str(exc.value)
    assert "rules/x/a.yar:1:6: warning[missing_metadata]" in text
    assert "required metadata `reference` not found" in text
    assert "rules/x/b.yar:2:" in text and "`severity` must be a string that matches" in text


def test_serialization_is_byte_stable_whatever_the_input_order():
    sources = [
        RuleSource(ns, f"rules/{ns}/{i}.yar", rule(f"R{i}", strings=f'$a = "m-{ns}-{i}-xyz"'))
        for ns in ("b", "a")
        for i in range(20)
    ]
    first = serialize_rules(compile_rules(sources))
    assert serialize_rules(compile_rules(list(reversed(sources)))) == first


def test_rule_names_ignore_comments():
    text = (
        "// rule Fake1 { }\n/* rule Fake2 {\n} */\n"
        "private rule Helper { condition: true }\nglobal rule G { condition: true }\n" + rule("Real")
    )
    assert rule_names([RuleSource("ns", "rules/ns/a.yar", text)]) == ["ns.G", "ns.Helper", "ns.Real"]
