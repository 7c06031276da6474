"""`relreq serve`'s first start creates the signing key on purpose, says so, and never replaces it."""

from __future__ import annotations

import logging

from artifacts.signing import KEY_RELPATH, key_id, signing_key
from release_requests.server import ensure_signing_key
from release_requests.settings import Settings


def test_serve_creates_the_key_once_and_says_so(tmp_path, caplog):
    settings = Settings(data_dir=tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="release_requests.server"):
        ensure_signing_key(settings)
    first = key_id(signing_key(data_dir=settings.data_dir).public_key())
    assert f"key id {first}" in caplog.text and str(settings.data_dir / KEY_RELPATH) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="release_requests.server"):
        ensure_signing_key(settings)  # a restart: the key every client pinned stays
    assert caplog.text == "" and key_id(signing_key(data_dir=settings.data_dir).public_key()) == first
