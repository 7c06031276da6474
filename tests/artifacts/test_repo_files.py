"""Allowlist and corpus definitions: parsed strictly, problems located as file:line."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from artifacts.allowlist import HEADER, make_entry, parse_allowlist
from artifacts.corpus import eicar, filler, parse_samples
from artifacts.errors import RepoLayoutError

ENTRY = "a" * 64 + "\tvendor tool\tRR-1\tJane <j@example.com>\t2026-11-20T09:30:00Z\n"


def test_allowlist_round_trip():
    entries = parse_allowlist(HEADER + ENTRY, origin="allowlist/sha256.tsv")
    assert entries["a" * 64].to_line() == ENTRY


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sha,reason\n", r"allowlist/sha256\.tsv:1: expected header"),
        (HEADER + "abc\tr\n", r"allowlist/sha256\.tsv:2: expected 5 tab-separated columns, got 2"),
        (HEADER + ENTRY + ENTRY, r"allowlist/sha256\.tsv:3: duplicate sha256"),
        (HEADER + ENTRY.replace("2026-11-20T09:30:00Z", "yesterday"), r"allowlist/sha256\.tsv:2: when:"),
    ],
)
def test_malformed_allowlist_is_located(text, message):
    with pytest.raises(RepoLayoutError, match=message):
        parse_allowlist(text, origin="allowlist/sha256.tsv")


@given(reason=st.text(alphabet=st.characters(blacklist_characters="\t\r\n", blacklist_categories=["Cs"]), min_size=1))
def test_any_single_line_reason_round_trips(reason):
    if not reason.strip():
        return
    entry = make_entry(sha256="b" * 64, reason=reason, request_id="RR-1", who="me", when="2026-01-01T00:00:00Z")
    assert parse_allowlist(HEADER + entry.to_line(), origin="a")["b" * 64].reason == reason


def test_samples_render_deterministically_and_eicar_is_assembled():
    text = '[[sample]]\nname = "e"\nexpect = "testfile.Eicar"\nparts = [{ eicar = true }, { hex = "00", times = 3 }]\n'
    [sample] = parse_samples(text, origin="corpus/malicious.toml", malicious=True)
    assert sample.render() == eicar() + b"\x00\x00\x00"
    assert len(eicar()) == 68 and eicar().endswith(b"$H+H*")
    assert filler(100, "s") == filler(100, "s") != filler(100, "t")


@pytest.mark.parametrize(
    ("text", "malicious", "message"),
    [
        (
            '[[sample]]\nname = "x"\nparts = [{ text = "a", hex = "00" }]\n',
            False,
            r"sample\[0\] \(x\): parts\.0: Value error, a part needs exactly one",
        ),
        ('[[sample]]\nname = "x"\nparts = [{ hex = "zz" }]\n', False, r"sample\[0\] \(x\): parts\.0"),
        ('[[sample]]\nname = "x"\nparts = [{ text = "a" }]\n', True, r"sample\[0\] \(x\): needs 'expect"),
        ('[[sample]]\nname = "x"\nexpect = "a.B"\nparts = [{ text = "a" }]\n', False, "must not have 'expect"),
        ("[[sample]\n", False, "corpus/x.toml: "),
    ],
)
def test_malformed_corpus_is_located(text, malicious, message):
    with pytest.raises(RepoLayoutError, match=message):
        parse_samples(text, origin="corpus/x.toml", malicious=malicious)
