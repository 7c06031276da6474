"""Tampered bundles are refused before any scan, and no report is written."""

import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from artifacts.base import build_base
from artifacts.bundle import MANIFEST, SIGNATURE
from artifacts.errors import IntegrityError, SignatureError
from artifacts.scan import open_base_bundle
from artifacts.signing import FileKeySigner, sign
from artifacts.verify import REPORT_FILE, verify_base

from .conftest import BUILDER


@pytest.fixture
def bundle(sigrepo, tmp_path, key, store):
    manifest = build_base(
        repo_path=sigrepo, ref="main", out_dir=tmp_path / "out", signer=FileKeySigner(key), store=store, builder=BUILDER
    )
    path = tmp_path / "out" / manifest.version
    for p in path.iterdir():
        os.chmod(p, 0o644)  # the attacker can write
    return path


def flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def tamper_rules(bundle, key):
    flip_byte(bundle / "rules.yarc", 1000)


def edit_manifest(bundle, key):
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["rule_count"] = 301
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def resign_with_other_key(bundle, key):
    (bundle / SIGNATURE).write_bytes(sign(Ed25519PrivateKey.generate(), (bundle / MANIFEST).read_bytes()))


def remove_signature(bundle, key):
    (bundle / SIGNATURE).unlink()


def edit_allowlist_and_resign_manifest_badly(bundle, key):
    (bundle / "allowlist.tsv").write_text(
        (bundle / "allowlist.tsv").read_text() + "x" * 64 + "\tr\tRR-1\tme\t2026-01-01T00:00:00Z\n"
    )


@pytest.mark.parametrize(
    ("tamper", "error", "message"),
    [
        (tamper_rules, IntegrityError, r"rules\.yarc: sha256 [0-9a-f]{64} does not match manifest"),
        (edit_manifest, SignatureError, r"manifest\.sig: signature does not verify with key [0-9a-f]{16}"),
        (resign_with_other_key, SignatureError, "signature does not verify"),
        (remove_signature, IntegrityError, r"manifest\.sig: missing from bundle"),
        (edit_allowlist_and_resign_manifest_badly, IntegrityError, r"allowlist\.tsv: sha256"),
    ],
    ids=["rules-byte", "manifest-edit", "other-key", "no-signature", "allowlist-edit"],
)
def test_tampered_bundle_is_refused(bundle, key, tamper, error, message):
    tamper(bundle, key)
    with pytest.raises(error, match=message):
        open_base_bundle(bundle, public_key=key.public_key())
    with pytest.raises(error, match=message):
        verify_base(bundle_dir=bundle, public_key=key.public_key(), samples=[], expect="clean")
    assert not (bundle / REPORT_FILE).exists()


def test_bundle_from_another_yara_x_version_is_refused(bundle, key):
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["yara_x_version"] = "0.1.0"
    data = (json.dumps(manifest, indent=2) + "\n").encode()
    (bundle / MANIFEST).write_bytes(data)
    (bundle / SIGNATURE).write_bytes(sign(key, data))
    with pytest.raises(IntegrityError, match="built with yara-x 0.1.0, this scanner has"):
        open_base_bundle(bundle, public_key=key.public_key())
