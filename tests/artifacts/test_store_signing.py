"""Content-addressed store (integrity on every read) and the Ed25519 signing key."""

import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from artifacts.digest import sha256_bytes
from artifacts.errors import IntegrityError, InvalidInput, ObjectMissing, SignatureError, SigningKeyError
from artifacts.signing import (
    KEY_RELPATH,
    FileKeySigner,
    Signer,
    create_signing_key,
    key_id,
    load_public_key,
    public_key_pem,
    sign,
    signing_key,
    verify,
)
from artifacts.store import ArtifactStore, LocalStore


def test_put_get_open_exists_and_mode(tmp_path):
    store: ArtifactStore = LocalStore(tmp_path / "store")
    src = tmp_path / "artifact.bin"
    src.write_bytes(b"payload")
    os.chmod(src, 0o755)
    digest = store.put(src)
    assert digest == sha256_bytes(b"payload") and store.exists(digest)
    assert store.put(src) == digest  # idempotent
    assert store.get(digest) == b"payload"
    with store.open(digest) as f:
        assert f.read() == b"payload"
    mode = stat.S_IMODE((tmp_path / "store" / "objects" / digest[:2] / digest).stat().st_mode)
    assert mode == 0o444


def test_corruption_is_detected_on_read(tmp_path):
    store = LocalStore(tmp_path / "store")
    src = tmp_path / "a"
    src.write_bytes(b"original")
    digest = store.put(src)
    obj = tmp_path / "store" / "objects" / digest[:2] / digest
    os.chmod(obj, 0o644)
    obj.write_bytes(b"rotten!!")
    with pytest.raises(IntegrityError, match=f"{digest}: content hashes to"):
        store.get(digest)
    with pytest.raises(IntegrityError):
        store.put(src)  # a rotten copy is not silently accepted as present


def test_missing_and_malformed_digests(tmp_path):
    store = LocalStore(tmp_path / "store")
    with pytest.raises(ObjectMissing, match="no object"):
        store.get("0" * 64)
    with pytest.raises(InvalidInput, match="not a sha256"):
        store.exists("../../etc/passwd")


def test_local_path_is_verified_once_per_file_state_and_rot_is_never_served(tmp_path):
    store: ArtifactStore = LocalStore(tmp_path / "store")
    assert isinstance(store, ArtifactStore)
    src = tmp_path / "a"
    src.write_bytes(b"original")
    digest = store.put(src)
    path = store.local_path(digest)
    assert path == tmp_path / "store" / "objects" / digest[:2] / digest and path.read_bytes() == b"original"
    assert store.local_path(digest) == path  # unchanged on disk: not hashed again
    os.chmod(path, 0o644)
    path.write_bytes(b"rotten")  # another size (and mtime): checked again
    with pytest.raises(IntegrityError, match=f"{digest}: content hashes to"):
        store.local_path(digest)
    with pytest.raises(ObjectMissing, match="no object"):
        store.local_path("1" * 64)


def test_file_key_signer_signs_what_the_public_key_verifies(tmp_path):
    with pytest.raises(SigningKeyError, match="relreq artifacts keygen"):
        FileKeySigner.load(tmp_path)  # reading never creates a key
    created, was_created = FileKeySigner.create(tmp_path)
    signer = FileKeySigner.load(tmp_path)
    assert was_created and not FileKeySigner.create(tmp_path)[1]
    assert isinstance(signer, Signer) and signer.path == tmp_path / KEY_RELPATH
    assert signer.key_id == created.key_id == key_id(signing_key(data_dir=tmp_path).public_key())
    assert signer.public_key_pem() == public_key_pem(signing_key(data_dir=tmp_path))
    signature = signer.sign(b"manifest")
    assert signature.endswith(b"\n")
    verify(load_public_key(signer.public_key_pem(), origin="pem"), b"manifest", signature, origin="sig")
    assert "BEGIN" not in repr(signer) and signer.key_id in repr(signer)


def test_key_is_created_once_with_mode_0600(tmp_path):
    key, created = create_signing_key(data_dir=tmp_path)
    path = tmp_path / KEY_RELPATH
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = create_signing_key(data_dir=tmp_path)
    assert not created_again and key_id(again.public_key()) == key_id(key.public_key())
    assert key_id(signing_key(data_dir=tmp_path).public_key()) == key_id(key.public_key())


def test_reading_a_missing_key_never_creates_one(tmp_path):
    with pytest.raises(SigningKeyError, match="relreq artifacts keygen"):
        signing_key(data_dir=tmp_path)
    assert not (tmp_path / KEY_RELPATH).exists()


def test_key_readable_by_others_is_refused(tmp_path):
    create_signing_key(data_dir=tmp_path)
    os.chmod(tmp_path / KEY_RELPATH, 0o644)
    with pytest.raises(SigningKeyError, match="mode 644 lets others read the signing key"):
        signing_key(data_dir=tmp_path)


def test_public_key_pem_round_trip_and_wrong_key(tmp_path):
    key, _ = create_signing_key(data_dir=tmp_path)
    pem = public_key_pem(key)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    public = load_public_key(pem, origin="pub.pem")
    verify(public, b"data", sign(key, b"data"), origin="sig")
    with pytest.raises(SignatureError, match="sig: signature does not verify"):
        verify(public, b"data", sign(Ed25519PrivateKey.generate(), b"data"), origin="sig")
    with pytest.raises(SigningKeyError, match="pub.pem: not a PEM public key"):
        load_public_key(b"garbage", origin="pub.pem")


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=256), flip=st.integers(min_value=0, max_value=255))
def test_any_changed_byte_breaks_the_signature(data, flip):
    key = Ed25519PrivateKey.generate()
    signature = sign(key, data)
    if data:
        changed = bytearray(data)
        changed[flip % len(data)] ^= 0xFF
        with pytest.raises(SignatureError):
            verify(key.public_key(), bytes(changed), signature, origin="s")
