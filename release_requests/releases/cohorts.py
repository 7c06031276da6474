"""Canary cohorts: which update clients get the new base while the canary channel is below 100 %.

A client's bucket is a hash of (channel, client id) into 10,000 buckets, so the answer never changes
between calls or processes, and a client inside the cohort at 5 % is inside at 25 % (the cohort only
grows). Hashing with the channel (not the version) keeps the same early ring across bases: a customer's
IT knows which of their machines take new bases first.
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def bucket(*, channel: str, client_id: str) -> int:
    digest = hashlib.sha256(f"{channel}\0{client_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_cohort(*, channel: str, client_id: str | None, percent: int) -> bool:
    """Whether this client gets the channel's new version; a client without an id waits for 100 %."""
    if percent >= 100:
        return True
    if client_id is None:
        return False
    return bucket(channel=channel, client_id=client_id) < percent * BUCKETS // 100
