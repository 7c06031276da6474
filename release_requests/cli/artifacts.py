"""`relreq artifacts ...` and `relreq sigrepo ...`: the artifacts library on the command line.

Thin on purpose: parse options, call one `artifacts` function, print a table or `--json`.
Exit codes: 0 success; 1 verification failed / scan detected something; 2 refused or error
(one line on stderr, no traceback). The signing key lives in `$RR_DATA_DIR/keys/signing.key`.
"""

import getpass
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from artifacts.base import build_base
from artifacts.errors import ArtifactError, InvalidInput
from artifacts.fixes import FixResult, fix_false_negative, fix_false_positive
from artifacts.hotfix import build_hotfix
from artifacts.products import product_spec
from artifacts.scan import exit_code, open_base_bundle, scan_files
from artifacts.signing import (
    KEY_RELPATH,
    FileKeySigner,
    create_signing_key,
    key_id,
    load_public_key,
    public_key_pem,
    signing_key,
)
from artifacts.starter import init_sigrepo
from artifacts.store import LocalStore
from artifacts.verify import verify_base
from release_requests.cli.output import console, fields, print_error, print_json, progress_bar, table
from release_requests.settings import get_settings
from release_requests.update_client import TRUSTED_KEY

artifacts_app = typer.Typer(no_args_is_help=True, help="Build, verify and sign antivirus bases and hotfixes.")
sigrepo_app = typer.Typer(no_args_is_help=True, help="Signature repositories (git + YARA-X rules).")

EXIT_FAILED = 1
EXIT_ERROR = 2

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
BuilderOpt = Annotated[
    str | None, typer.Option(help="Builder identity recorded in the manifest [default: $USER@host].")
]
PublicKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="PEM public key to verify with [default: trusted-key.pem that `relreq client fetch` saved beside it].",
    ),
]


class Expect(StrEnum):
    clean = "clean"
    detected = "detected"


def _data_dir() -> Path:
    return get_settings().data_dir


def _config_dir() -> Path:
    return get_settings().config_dir


def _builder(value: str | None) -> str:
    return value or f"{os.environ.get('USER') or getpass.getuser()}@{socket.gethostname()}"


def _public_key(path: Path | None, *, bundle: Path) -> Ed25519PublicKey:
    """The key to check `bundle` with: --public-key, else the key the update client saved beside it.

    `relreq client fetch` installs into DEST/versions/<release> and pins DEST/trusted-key.pem; nothing
    here falls back to the server's own key, so a check on a customer's machine never trusts by accident.
    """
    if path is None:
        saved = [d / TRUSTED_KEY for d in (bundle.resolve().parent, bundle.resolve().parent.parent)]
        path = next((candidate for candidate in saved if candidate.is_file()), None)
        if path is None:
            raise InvalidInput(
                f"{bundle}: no public key to check it with; pass --public-key FILE (`relreq artifacts public-key` "
                f"prints the vendor's) or install it with `relreq client fetch`, which saves {TRUSTED_KEY}"
            )
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read public key ({exc.strerror})") from exc
    return load_public_key(pem, origin=str(path))


@contextmanager
def _reported() -> Iterator[None]:
    """Domain errors become one stderr line and exit code 2."""
    try:
        yield
    except ArtifactError as exc:
        print_error(str(exc))
        raise typer.Exit(EXIT_ERROR) from None


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read {what} ({exc})") from exc


def _show_fix(result: FixResult, as_json: bool) -> None:
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    fields(
        f"{result.kind.replace('_', ' ')} fix for {result.request_id}",
        [
            ("fix ref", result.fix_ref),
            ("branch", result.branch),
            ("commit", result.commit),
            ("parent", result.parent),
            ("changed", result.path),
            ("sample sha256", result.sample_sha256),
            ("matched rules", ", ".join(result.matched_rules)),
        ],
    )


FixRefOpt = Annotated[
    str | None, typer.Option("--fix-ref", help="Opaque reference shipped in the base [default: a new FX-… id].")
]


@artifacts_app.command("fix-fp")
def fix_fp(
    repo: Annotated[Path, typer.Option(help="Signature repository.")],
    sample: Annotated[Path, typer.Option(help="The wrongly detected file.")],
    request: Annotated[str, typer.Option(help="Release request id, e.g. RR-2026-000123.")],
    author: Annotated[str, typer.Option(help='Engineer, "Name <mail>".')],
    fix_ref: FixRefOpt = None,
    base: Annotated[str, typer.Option(help="Ref the fix branch starts from if it does not exist.")] = "HEAD",
    as_json: JsonOpt = False,
) -> None:
    """False positive: allowlist the sample's sha256 on branch fix/<request>.

    The allowlist line ships inside public bases, so it holds only the hash, a neutral reason naming
    the matched rules and the fix's opaque reference — never the request id or the customer's words.
    """
    with _reported():
        result = fix_false_positive(
            repo_path=repo, sample=sample, request_id=request, author=author, fix_ref=fix_ref, base=base
        )
    _show_fix(result, as_json)


@artifacts_app.command("fix-fn")
def fix_fn(
    repo: Annotated[Path, typer.Option(help="Signature repository.")],
    rule: Annotated[Path, typer.Option(help="YARA rule file written by the analyst.")],
    sample: Annotated[Path, typer.Option(help="The missed file; the rule must detect it.")],
    request: Annotated[str, typer.Option(help="Release request id.")],
    author: Annotated[str, typer.Option(help='Engineer, "Name <mail>".')],
    family: Annotated[str, typer.Option(help="Family folder = YARA-X namespace.")] = "generic",
    fix_ref: FixRefOpt = None,
    base: Annotated[str, typer.Option(help="Ref the fix branch starts from if it does not exist.")] = "HEAD",
    as_json: JsonOpt = False,
) -> None:
    """False negative: add a validated rule as rules/<family>/<fix-ref>.yar on branch fix/<request>."""
    with _reported():
        result = fix_false_negative(
            repo_path=repo,
            rule_text=_read_text(rule, "rule"),
            sample=sample,
            request_id=request,
            author=author,
            family=family,
            fix_ref=fix_ref,
            base=base,
        )
    _show_fix(result, as_json)


@artifacts_app.command("build-base")
def build_base_cmd(
    repo: Annotated[Path, typer.Option(help="Signature repository.")],
    ref: Annotated[str, typer.Option(help="Branch, tag or commit to build.")],
    out: Annotated[Path, typer.Option(help="Bundles go to <out>/<version>/.")],
    parent_version: Annotated[
        str | None, typer.Option(help="Parent base version [default: newest base tag the commit descends from].")
    ] = None,
    builder: BuilderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compile (any error or warning fails), bundle, sign, store and tag a base."""
    with _reported(), progress_bar(not as_json) as progress:
        manifest = build_base(
            repo_path=repo,
            ref=ref,
            out_dir=out,
            signer=FileKeySigner.load(_data_dir()),
            store=LocalStore(_data_dir() / "artifacts"),
            builder=_builder(builder),
            parent_version=parent_version,
            progress=progress,
        )
    if as_json:
        print_json(manifest.model_dump(mode="json"))
        return
    fields(
        f"base {manifest.version}",
        [
            ("bundle", out / manifest.version),
            ("commit", manifest.commit),
            ("parent", manifest.parent_version),
            ("rules", manifest.rule_count),
            ("allowlisted", manifest.allowlist_entries),
            ("yara-x", manifest.yara_x_version),
            ("key", manifest.signing_key_id),
        ],
    )


@artifacts_app.command("verify-base")
def verify_base_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory <out>/<version>.")],
    sample: Annotated[list[Path] | None, typer.Option(help="Request sample (repeatable).")] = None,
    expect: Annotated[Expect | None, typer.Option(help="What the request samples must now be.")] = None,
    previous: Annotated[Path | None, typer.Option(help="Previous bundle to diff detections against.")] = None,
    repo: Annotated[Path | None, typer.Option(help="Signature repository (for the corpora).")] = None,
    public_key: PublicKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check signature and hashes, then samples, corpora, ClamAV and the diff; writes verification.json."""
    samples = sample or []
    if samples and expect is None:
        print_error("--expect clean|detected is required with --sample")
        raise typer.Exit(EXIT_ERROR)
    with _reported(), progress_bar(not as_json) as progress:
        report = verify_base(
            bundle_dir=bundle,
            public_key=_public_key(public_key, bundle=bundle),
            samples=samples,
            expect=(expect or Expect.detected).value,
            previous=previous,
            repo_path=repo,
            progress=progress,
        )
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        table(
            f"verification of {report.version} — {'PASSED' if report.passed else 'FAILED'}",
            ["check", "status", "detail"],
            [[c.name, c.status, c.detail] for c in report.checks],
        )
        if report.changes:
            table(
                f"detections changed since {report.previous_version}",
                ["sample", "before", "after", "rules now"],
                [[c.name, c.before, c.after, ", ".join(c.after_rules)] for c in report.changes],
            )
    if not report.passed:
        raise typer.Exit(EXIT_FAILED)


@artifacts_app.command("scan")
def scan_cmd(
    files: Annotated[list[Path], typer.Argument(help="Files to scan.")],
    bundle: Annotated[Path, typer.Option(help="Base bundle directory.")],
    public_key: PublicKeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Scan files with a verified base, honouring its allowlist. Exit 0 clean, 1 detected, 2 error."""
    with _reported():
        opened = open_base_bundle(bundle, public_key=_public_key(public_key, bundle=bundle))
    results = scan_files(opened, files)
    if as_json:
        print_json({"base": opened.manifest.version, "results": [r.model_dump(mode="json") for r in results]})
    else:
        table(
            f"scan with base {opened.manifest.version}",
            ["file", "verdict", "rules", "sha256"],
            [[r.name, r.verdict, ", ".join(r.rules) or r.error, r.sha256] for r in results],
        )
    raise typer.Exit(exit_code(results))


@artifacts_app.command("build-hotfix")
def build_hotfix_cmd(
    product: Annotated[str, typer.Option(help="Product name from config/products.toml.")],
    version: Annotated[str, typer.Option(help="Customer's product version, e.g. 11.2.0.")],
    commits: Annotated[list[str], typer.Option(help="Fix commit to cherry-pick (repeat in order).")],
    customer: Annotated[str, typer.Option(help="Customer id the hotfix is private to.")],
    out: Annotated[Path | None, typer.Option(help="Bundles root [default: $RR_DATA_DIR/hotfixes].")] = None,
    builder: BuilderOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Private hotfix: licence check, branch from the release tag, cherry-pick, build, sign."""
    # deferred: the customer database layer would add ~0.3 s to every `relreq` call, --help included
    from release_requests.customers.licences import licence_grants_for

    try:
        grants = licence_grants_for(customer)
    except LookupError as exc:
        print_error(f"customer {customer}: unknown ({exc})")
        raise typer.Exit(EXIT_ERROR) from None
    with _reported(), progress_bar(not as_json) as progress:
        manifest = build_hotfix(
            product=product_spec(_config_dir() / "products.toml", product),
            version=version,
            commits=commits,
            customer=customer,
            grants=grants,
            out_dir=out or _data_dir() / "hotfixes",
            signer=FileKeySigner.load(_data_dir()),
            store=LocalStore(_data_dir() / "artifacts"),
            builder=_builder(builder),
            progress=progress,
        )
    if as_json:
        print_json(manifest.model_dump(mode="json"))
        return
    fields(
        f"hotfix {manifest.product} {manifest.version} (private to {manifest.private_to})",
        [("branch", manifest.branch), ("commit", manifest.commit), ("files", ", ".join(manifest.files))],
    )


def _print_public_key(key, as_json: bool, **extra) -> None:
    pem = public_key_pem(key).decode()
    if as_json:
        print_json({"format": "pem-spki-ed25519", "key_id": key_id(key.public_key()), "public_key": pem, **extra})
    else:
        console.out(pem, end="", highlight=False)


@artifacts_app.command("public-key")
def public_key_cmd(as_json: JsonOpt = False) -> None:
    """Print the signing public key as PEM (SubjectPublicKeyInfo); the key must exist (see keygen)."""
    with _reported():
        key = signing_key(data_dir=_data_dir())
    _print_public_key(key, as_json)


@artifacts_app.command("keygen")
def keygen_cmd(as_json: JsonOpt = False) -> None:
    """Create the Ed25519 signing key in $RR_DATA_DIR/keys (mode 0600) and print its public half.

    An existing key is kept, never replaced (update clients pin it); the command then says so on stderr.
    """
    with _reported():
        key, created = create_signing_key(data_dir=_data_dir())
    if not created:
        print_error(f"{_data_dir() / KEY_RELPATH}: a signing key exists already; kept it")
    _print_public_key(key, as_json, created=created)


@sigrepo_app.command("init")
def init_cmd(
    directory: Annotated[Path, typer.Argument(help="Where to create the repository (absent or empty).")],
    author: Annotated[str, typer.Option(help='Initial commit author, "Name <mail>".')] = (
        "Signature Team <signatures@example.com>"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Create a starter signature repository (300 rules, corpora) with an initial commit."""
    with _reported():
        result = init_sigrepo(path=directory, author=author)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    fields(
        f"signature repository {directory}",
        [
            ("commit", result.commit),
            ("rules", result.rules),
            ("clean samples", result.clean_samples),
            ("malicious samples", result.malicious_samples),
        ],
    )
