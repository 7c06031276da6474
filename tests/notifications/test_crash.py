"""Exactly once in effect: the deliverer is SIGKILLed at several points mid-send and restarted.

Every notice must arrive; Slack must show each notification id at most once (a resend looks for it in
the channel history first); e-mail may repeat only with the same Message-ID, so the number of distinct
Message-IDs equals the number of e-mail notices.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

from tests.conftest import REPO
from tests.notifications.conftest import deliver_until_quiet

LEASE = "0.5"


def run_deliverer(committed_db: str, slack, smtp, crash: str) -> int:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.notifications.deliver_and_die",
            committed_db,
            LEASE,
            f"slack={slack.base_url}",
            f"smtp={smtp.url}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RR_CRASH_AT": crash},
    )
    assert result.returncode in (0, -signal.SIGKILL), result.stderr[-2000:]
    return result.returncode


def test_killed_deliverer_loses_nothing_and_duplicates_nothing(committed_db, scene, slack, smtp, make_deliverer):
    customer = scene.customer(language="ru")
    engineer = scene.person("triage")
    requests = [scene.request(customer, by=engineer, title=f"FP number {i}") for i in range(3)]
    rows = scene.rows()
    assert len(rows) == 12  # per request: customer Slack + 2 e-mails, internal Slack

    # killed: after claiming (nothing sent yet), right after Slack accepted a post and right after the SMTP
    # server accepted a message (both before any bookkeeping)
    for crash in ("notify:claimed", "notify:after_slack", "notify:after_email"):
        assert run_deliverer(committed_db, slack, smtp, crash) == -signal.SIGKILL, crash
    # a last deliverer (in-process) takes over the rows whose leases the dead processes left behind
    deliver_until_quiet(make_deliverer(lease_seconds=float(LEASE)))

    rows = scene.rows()
    assert {r.status for r in rows} == {"sent"} and len(rows) == 12
    # Slack: every notice exactly once, although two processes died right after posting
    posted = Counter(m["metadata"]["event_payload"]["notification_id"] for m in slack.all_messages())
    slack_ids = {r.id for r in rows if r.channel == "slack"}
    assert set(posted) == slack_ids and set(posted.values()) == {1}
    # e-mail: the same Message-ID may arrive twice (killed after acceptance), never two different ones
    email_rows = [r for r in rows if r.channel == "email"]
    assert len(set(smtp.message_ids())) == len(email_rows) == 6
    assert set(smtp.message_ids()) == {f"<{r.id}@release-requests>" for r in email_rows}
    assert len(smtp.message_ids()) > len(email_rows)  # the crash after acceptance really happened
    # the recovered Slack posts were found in the channel history, not posted again
    found = [
        e for r in requests for e in scene.events(r) if e.action == "notification.sent" and e.after["already_delivered"]
    ]
    assert found
