"""Names shared by the server and the update client: release keys, channel and client id patterns.

Kept free of database imports so the update client (what a customer's IT runs) stays small.
"""

from __future__ import annotations

CHANNEL_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,79}$"
# A stable id the update client keeps (a UUID, a host name): it decides the client's canary cohort.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{2,63}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def release_key(manifest: dict) -> str:
    """The unique name of a release: a base's version, or `<customer>/<product>/<version>` for a hotfix.

    Hotfix versions (`11.2.0-1`) repeat across customers and products, so the signed manifest's
    `private_to` and `product` are part of the key; the client recomputes it from what was signed.
    """
    if manifest.get("kind") == "hotfix":
        return f"{manifest['private_to']}/{manifest['product']}/{manifest['version']}"
    return manifest["version"]
