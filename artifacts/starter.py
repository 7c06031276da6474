"""`relreq sigrepo init`: a realistic starter signature repository with an initial commit.

300 rules across seven families, every rule with the policy metadata, written in several
pattern styles (text, hex with wildcards and jumps, `N of`, anchored, wide, nocase), plus a
malicious corpus with one synthetic sample per rule and a clean corpus of near misses. Content is
generated deterministically, so two starters are identical except for the commit time.
"""

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import git
from pydantic import BaseModel

from artifacts.allowlist import HEADER
from artifacts.corpus import eicar_halves
from artifacts.digest import sha256_bytes
from artifacts.errors import InvalidInput
from artifacts.gitops import parse_author
from artifacts.sigrepo import ALLOWLIST_PATH, CLEAN_CORPUS_PATH, MALICIOUS_CORPUS_PATH, rule_path

_FAMILIES = {
    "trojan": ("Trojan", "high", ["Dropper", "Stealer", "Banker", "Injector", "Loader", "Spy", "Clicker"]),
    "ransomware": ("Ransom", "critical", ["Locker", "Crypter", "Wiper", "Extort", "Vault", "Shade", "Encoder"]),
    "worm": ("Worm", "high", ["Usb", "Net", "Mail", "Ptp", "Irc", "Smb", "Lan"]),
    "backdoor": ("Backdoor", "high", ["Rat", "Shell", "Bot", "Agent", "Proxy", "Tunnel", "Beacon"]),
    "downloader": ("Downloader", "medium", ["Fetch", "Stager", "Macro", "Script", "Bits", "Curl", "Pull"]),
    "adware": ("Adware", "low", ["Popup", "Bundler", "Toolbar", "Redirect", "Inject", "Tracker", "Miner"]),
}
_PLATFORMS = ["Win32", "Win64", "Linux", "MSIL", "Script", "Android", "MacOS"]
_AUTHORS = ["A. Kowalski", "M. Ibrahim", "S. Tanaka", "L. Moreau"]
_RULES_PER_FILE = 7
_TEST_MARKERS = 5
_EPOCH = date(2025, 1, 6)


class StarterRepo(BaseModel):
    path: Path
    commit: str
    rules: int
    clean_samples: int
    malicious_samples: int


@dataclass(frozen=True)
class _Rule:
    """One generated rule: its YARA text and the corpus parts of the sample it must detect."""

    namespace: str
    file: str
    name: str
    text: str
    sample_parts: list[dict]


def init_sigrepo(*, path: Path, author: str, now: datetime | None = None) -> StarterRepo:
    """Create the starter repository at `path` (absent or empty) with one initial commit."""
    now = now or datetime.now(UTC)
    actor = parse_author(author)
    if path.exists() and any(path.iterdir()):
        raise InvalidInput(f"{path}: exists and is not empty")
    rules = _generate_rules()
    files: dict[str, str] = {
        "README.md": _README,
        ".gitattributes": "*.yar text eol=lf\n*.toml text eol=lf\n*.tsv text eol=lf\n",
        ALLOWLIST_PATH: HEADER,
        CLEAN_CORPUS_PATH: _corpus_toml(_clean_samples()),
        MALICIOUS_CORPUS_PATH: _corpus_toml(
            [
                {"name": r.name.lower().replace("_", "-"), "expect": f"{r.namespace}.{r.name}", "parts": r.sample_parts}
                for r in rules
            ]
        ),
    }
    for rule in rules:
        key = rule_path(rule.namespace, rule.file)
        files[key] = files.get(key, "") + rule.text
    path.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", newline="\n")
    repo = git.Repo.init(path, initial_branch="main")
    repo.index.add(sorted(files))
    commit = repo.index.commit(
        f"Starter signature repository: {len(rules)} rules",
        author=actor,
        committer=actor,
        author_date=now,
        commit_date=now,
    )
    return StarterRepo(
        path=path,
        commit=commit.hexsha,
        rules=len(rules),
        clean_samples=len(_clean_samples()),
        malicious_samples=len(rules),
    )


def _generate_rules() -> list[_Rule]:
    rules = []
    for namespace, (prefix, severity, words) in _FAMILIES.items():
        for i in range(len(words) * _RULES_PER_FILE):
            word, platform = words[i // _RULES_PER_FILE], _PLATFORMS[i % len(_PLATFORMS)]
            name = f"{prefix}_{platform}_{word}_{i + 1:03d}"
            strings, condition, parts = _pattern(i % 7, f"RRSIM-{namespace.upper()}-{i + 1:03d}", name)
            meta = _meta(name, f"{word} {namespace} for {platform}", severity, i)
            rules.append(_Rule(namespace, word.lower(), name, _rule_text(name, meta, strings, condition), parts))
    head, tail = eicar_halves()
    eicar_strings = [f"$head = {_yara_str(head)}", f"$tail = {_yara_str(tail)}"]
    eicar_meta = _meta("Eicar_Test_File", "EICAR anti-virus test file", "low", 0)
    rules.append(
        _Rule(
            "testfile",
            "eicar",
            "Eicar_Test_File",
            _rule_text("Eicar_Test_File", eicar_meta, eicar_strings, f"$head at 0 and $tail at {len(head)}"),
            [{"eicar": True}],
        )
    )
    for i in range(1, _TEST_MARKERS + 1):
        name = f"Rrsim_Test_Marker_{i}"
        strings, condition, parts = _pattern(0, f"RRSIM-TESTFILE-{i:03d}", name)
        meta = _meta(name, "synthetic test marker", "low", i)
        rules.append(_Rule("testfile", "markers", name, _rule_text(name, meta, strings, condition), parts))
    return rules


def _pattern(kind: int, label: str, name: str) -> tuple[list[str], str, list[dict]]:
    """Strings, condition and matching sample parts for one of seven pattern styles."""
    salt = sha256_bytes(name.encode())
    marker = f"{label}-{salt[:12]}"
    pad = [{"filler": 192 + kind * 32, "seed": name}]
    if kind == 0:
        return [f"$m = {_yara_str(marker)}"], "$m", [*pad, {"text": marker}, *pad]
    if kind == 1:
        b = bytes.fromhex(salt[12:24])
        return (
            [f"$m = {_yara_str(marker)}", f"$h = {{ {b[:3].hex(' ').upper()} ?? {b[3:].hex(' ').upper()} }}"],
            "$m and $h",
            [*pad, {"text": marker}, {"hex": (b[:3] + b"\x00" + b[3:]).hex()}, *pad],
        )
    if kind == 2:
        markers = [f"{marker}-{n}" for n in "abc"]
        strings = [f"$a{n} = {_yara_str(m)}" for n, m in enumerate(markers)]
        return strings, "2 of ($a*)", [*pad, {"text": markers[0]}, *pad, {"text": markers[2]}]
    if kind == 3:
        return [f"$m = {_yara_str(marker)}"], "$m at 0", [{"text": marker}, *pad]
    if kind == 4:
        return [f"$m = {_yara_str(marker)} wide ascii"], "$m", [*pad, {"hex": marker.encode("utf-16-le").hex()}]
    if kind == 5:
        return [f"$m = {_yara_str(marker)} nocase"], "$m and filesize < 2MB", [*pad, {"text": marker.swapcase()}]
    b = bytes.fromhex(salt[24:32])
    return (
        [f"$h = {{ 52 52 53 49 4D [2-8] {b.hex(' ').upper()} }}"],
        "$h",
        [*pad, {"text": "RRSIM"}, {"hex": "2d2d2d"}, {"hex": b.hex()}, *pad],
    )


def _meta(name: str, description: str, severity: str, i: int) -> dict[str, str]:
    return {
        "author": _AUTHORS[i % len(_AUTHORS)],
        "description": description,
        "severity": severity,
        "created": (_EPOCH + timedelta(days=3 * i)).isoformat(),
        "reference": f"https://intel.example.com/threats/{name.lower()}",
    }


def _rule_text(name: str, meta: dict[str, str], strings: list[str], condition: str) -> str:
    meta_lines = "".join(f"    {k} = {_yara_str(v)}\n" for k, v in meta.items())
    string_lines = "".join(f"    {s}\n" for s in strings)
    return f"rule {name} {{\n  meta:\n{meta_lines}  strings:\n{string_lines}  condition:\n    {condition}\n}}\n\n"


def _yara_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _clean_samples() -> list[dict]:
    head, tail = eicar_halves()
    return [
        {"name": "readme-text", "parts": [{"text": "Quarterly report\n" + "All systems nominal. " * 40}]},
        {"name": "json-config", "parts": [{"text": '{"service": "mail-gateway", "retries": 3, "tls": true}\n'}]},
        {
            "name": "shell-script",
            "parts": [{"text": "#!/bin/sh\nset -eu\ncurl -fsS https://example.com/a | sha256sum\n"}],
        },
        {
            "name": "pe-like-header",
            "parts": [{"hex": "4d5a90000300000004000000ffff0000"}, {"filler": 4096, "seed": "pe"}],
        },
        {"name": "zip-like", "parts": [{"hex": "504b0304140000000800"}, {"filler": 2048, "seed": "zip"}]},
        {"name": "pdf-like", "parts": [{"text": "%PDF-1.7\n"}, {"filler": 2048, "seed": "pdf"}, {"text": "%%EOF\n"}]},
        {"name": "random-64k", "parts": [{"filler": 65536, "seed": "random"}]},
        {"name": "zeros-32k", "parts": [{"hex": "00", "times": 32768}]},
        {"name": "utf16-document", "parts": [{"hex": "Hello from a clean document".encode("utf-16-le").hex()}]},
        {"name": "near-miss-marker-prefix", "parts": [{"text": "RRSIM-TROJAN-001- RRSIM-WORM-"}]},
        {"name": "near-miss-bare-rrsim", "parts": [{"text": "RRSIM"}, {"filler": 64, "seed": "bare"}]},
        {"name": "near-miss-eicar-head", "parts": [{"text": head}]},
        {"name": "near-miss-eicar-tail", "parts": [{"text": tail}]},
        {"name": "near-miss-eicar-split", "parts": [{"text": head}, {"text": "----"}, {"text": tail}]},
    ]


def _corpus_toml(samples: list[dict]) -> str:
    out = ["# Synthetic samples, rendered at run time by artifacts.corpus (no real malware in git).\n"]
    for sample in samples:
        out.append("\n[[sample]]\n")
        out.append(f"name = {json.dumps(sample['name'])}\n")
        if "expect" in sample:
            out.append(f"expect = {json.dumps(sample['expect'])}\n")
        parts = ", ".join(
            "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in part.items()) + " }" for part in sample["parts"]
        )
        out.append(f"parts = [{parts}]\n")
    return "".join(out)


_README = """# Signature repository

    rules/<family>/*.yar     YARA-X rules; the folder name is the namespace
    allowlist/sha256.tsv     reviewed false-positive allowlist (sha256, reason, request_id, who, when)
    corpus/clean.toml        synthetic clean samples: nothing may detect them
    corpus/malicious.toml    synthetic malicious samples and the rule expected to detect each

Every rule needs metadata: author, description, severity (low|medium|high|critical),
created (YYYY-MM-DD), reference. A build fails on any compiler error or warning.
Samples are synthesised at run time (marker bytes; EICAR assembled from two halves):
never commit a real malware file.
"""
