"""Benchmark the artifacts pipeline beside raw YARA-X doing the same work (the floor).

    .venv/bin/python bench/artifacts_bench.py [--rules 1000 10000] [--corpus-mib 100]

For each rule count: (1) compile + bundle + sign — `build_base` on a generated git signature
repository (read tree, compile, serialize, write, sign, store, tag) vs raw YARA-X compiling the same
sources and serializing them to a file; (2) verify + scan of a generated corpus — `open_base_bundle`
(signature, hashes, deserialize) + `scan_bytes` on every file vs raw deserialize + `Scanner.scan`.
"""

import argparse
import io
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import git
import yara_x
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from artifacts.allowlist import HEADER
from artifacts.base import RULES_FILE, build_base
from artifacts.scan import open_base_bundle, scan_bytes
from artifacts.signing import FileKeySigner
from artifacts.sigrepo import ALLOWLIST_PATH, rule_sources
from artifacts.store import LocalStore
from artifacts.yarax import YARA_X_VERSION

FAMILIES = [
    "trojan",
    "ransomware",
    "worm",
    "backdoor",
    "downloader",
    "adware",
    "spyware",
    "rootkit",
    "miner",
    "exploit",
]
RULES_PER_FILE = 50
FILE_MIB = 1


def rule_text(family: str, i: int) -> str:
    rng = random.Random(f"{family}{i}")
    marker = f"BENCH-{family.upper()}-{i:05d}-{rng.getrandbits(48):012x}"
    hexpat = (
        " ".join(f"{rng.getrandbits(8):02X}" for _ in range(4))
        + " ?? "
        + " ".join(f"{rng.getrandbits(8):02X}" for _ in range(4))
    )
    return (
        f'rule {family.capitalize()}_Bench_{i:05d} {{\n  meta:\n    author = "bench"\n'
        f'    description = "generated"\n    severity = "high"\n    created = "2026-01-01"\n'
        f'    reference = "bench"\n  strings:\n    $m = "{marker}"\n    $h = {{ {hexpat} }}\n'
        "  condition:\n    $m or $h\n}\n"
    )


def make_repo(path: Path, n_rules: int) -> None:
    repo = git.Repo.init(path, initial_branch="main")
    files = {ALLOWLIST_PATH: HEADER}
    for i in range(n_rules):
        family = FAMILIES[i % len(FAMILIES)]
        name = f"rules/{family}/r{i // (RULES_PER_FILE * len(FAMILIES)):04d}.yar"
        files[name] = files.get(name, "") + rule_text(family, i)
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    repo.index.add(list(files))
    actor = git.Actor("Bench", "bench@example.com")
    repo.index.commit("bench rules", author=actor, committer=actor)


def make_corpus(n_mib: int) -> list[bytes]:
    rng = random.Random(2026)
    return [rng.randbytes(FILE_MIB << 20) for _ in range(n_mib // FILE_MIB)]


REPEAT = 3


def timed(fn):
    """Best of REPEAT runs (the first run also pays imports and page cache warm-up)."""
    best, result = float("inf"), None
    for _ in range(REPEAT):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def raw_build(sources, out: Path) -> None:
    compiler = yara_x.Compiler()
    namespace = None
    for source in sources:
        if source.namespace != namespace:
            namespace = source.namespace
            compiler.new_namespace(namespace)
        compiler.add_source(source.text, origin=source.path)
    with out.open("wb") as f:
        compiler.build().serialize_into(f)


def raw_scan(blob: bytes, corpus: list[bytes]) -> int:
    scanner = yara_x.Scanner(yara_x.Rules.deserialize_from(io.BytesIO(blob)))
    return sum(len(scanner.scan(data).matching_rules) for data in corpus)


def ours_scan(bundle: Path, key, corpus: list[bytes]) -> int:
    opened = open_base_bundle(bundle, public_key=key.public_key())
    return sum(scan_bytes(opened, data, name=str(i)).verdict != "clean" for i, data in enumerate(corpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--corpus-mib", type=int, default=100)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"yara-x {YARA_X_VERSION}, best of {REPEAT}"
    )
    corpus = make_corpus(args.corpus_mib)
    key = Ed25519PrivateKey.generate()
    print("| rules | step | artifacts | raw YARA-X | overhead |\n|---|---|---|---|---|")
    for n_rules in args.rules:
        bench(n_rules, corpus, key)


def bench(n_rules: int, corpus: list[bytes], key: Ed25519PrivateKey) -> None:
    """Print the two table rows for one rule count."""
    mib = sum(map(len, corpus)) / (1 << 20)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_repo(root / "repo", n_rules)
        sources = rule_sources(git.Repo(root / "repo").head.commit)
        raw_t, _ = timed(lambda: raw_build(sources, root / "raw.yarc"))
        ours_t, manifest = timed(  # each run tags a new base version and writes a new bundle
            lambda: build_base(
                repo_path=root / "repo",
                ref="main",
                out_dir=root / "out",
                signer=FileKeySigner(key),
                store=LocalStore(root / "store"),
                builder="bench",
            )
        )
        bundle = root / "out" / manifest.version
        size_kib = (bundle / RULES_FILE).stat().st_size / 1024
        print(
            f"| {n_rules:,} | compile + bundle + sign ({size_kib:,.0f} KiB) | {ours_t:.2f} s | {raw_t:.2f} s "
            f"| {ours_t / raw_t:.2f}x |"
        )
        blob = (bundle / RULES_FILE).read_bytes()
        raw_t, _ = timed(lambda: raw_scan(blob, corpus))
        ours_t, _ = timed(lambda: ours_scan(bundle, key, corpus))
        print(
            f"| {n_rules:,} | verify + scan {mib:.0f} MiB | {ours_t:.2f} s ({mib / ours_t:,.0f} MiB/s) "
            f"| {raw_t:.2f} s ({mib / raw_t:,.0f} MiB/s) | {ours_t / raw_t:.2f}x |"
        )


if __name__ == "__main__":
    main()
