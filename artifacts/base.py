"""Build a signed antivirus base bundle from one commit of the signature repository.

Layout of `<out>/<version>/`:
    rules.yarc      serialized YARA-X rules (sources added sorted -> byte-stable per commit)
    allowlist.tsv   the commit's allowlist/sha256.tsv, byte for byte
    manifest.json   BaseManifest (sha256 of every file, commit, versions, builder, time)
    manifest.sig    Ed25519 signature of manifest.json (base64)
The commit is then tagged with the base version (annotated tag).
"""

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from artifacts.allowlist import parse_allowlist
from artifacts.baseversion import next_base_version, parent_base_version
from artifacts.bundle import BaseManifest, manifest_fields, seal, staged_bundle
from artifacts.gitops import create_annotated_tag, open_repo, resolve_commit
from artifacts.progress import Progress, silent
from artifacts.signing import Signer
from artifacts.sigrepo import ALLOWLIST_PATH, read_text, rule_sources
from artifacts.store import ArtifactStore
from artifacts.yarax import YARA_X_VERSION, compile_rules, rule_names, serialize_rules

RULES_FILE = "rules.yarc"
ALLOWLIST_FILE = "allowlist.tsv"


def build_base(
    *,
    repo_path: Path,
    ref: str,
    out_dir: Path,
    signer: Signer,
    store: ArtifactStore,
    builder: str,
    parent_version: str | None = None,
    now: datetime | None = None,
    progress: Progress = silent,
) -> BaseManifest:
    """Compile, bundle, sign, store and tag; any compile error or warning refuses the build."""
    now = now or datetime.now(UTC)
    steps = 5
    repo = open_repo(repo_path)
    commit = resolve_commit(repo, ref)
    progress(0, steps, "reading rules")
    sources = rule_sources(commit)
    allowlist_text = read_text(commit, ALLOWLIST_PATH)
    allowlist = parse_allowlist(allowlist_text, origin=ALLOWLIST_PATH)
    parent = parent_base_version(repo, commit=commit, requested=parent_version)
    progress(1, steps, f"compiling {len(sources)} files")
    blob = serialize_rules(compile_rules(sources))
    names = rule_names(sources)
    version = next_base_version(repo, day=now.date())
    progress(2, steps, f"writing bundle {version}")
    with staged_bundle(out_dir / version) as staging:
        (staging / RULES_FILE).write_bytes(blob)
        (staging / ALLOWLIST_FILE).write_text(allowlist_text, encoding="utf-8", newline="")
        manifest = BaseManifest(
            version=version,
            commit=commit.hexsha,
            parent_version=parent,
            rule_count=len(names),
            namespaces=dict(Counter(name.split(".", 1)[0] for name in names)),
            allowlist_entries=len(allowlist),
            yara_x_version=YARA_X_VERSION,
            builder=builder,
            built_at=now,
            **manifest_fields(staging, signer=signer),
        )
        progress(3, steps, "signing and storing")
        seal(staging, manifest, signer=signer, store=store)
        progress(4, steps, f"tagging {commit.hexsha[:12]} as {version}")
        create_annotated_tag(
            repo, name=version, commit=commit, message=f"antivirus base {version} ({len(names)} rules)", tagger=builder
        )
    progress(steps, steps, f"built {version}")
    return manifest
