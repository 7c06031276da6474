"""`relreq release …` over the real API: channels, history, revert one step and --to, permissions."""

from __future__ import annotations

import json

from release_requests import db
from tests.releases.fixtures import put


def test_revert_one_step_and_to_a_version_from_the_cli(relreq, world, releases, config):
    customer = world.customer()
    channel = f"customer-{customer}"
    with db.transaction(world.sessions) as s:
        put(s, channel, releases.v1, releases.v2, config=config)
    manager = world.user("release_manager")

    code, out, err = relreq("release", "revert", channel, "--reason", "FP storm at the customer", token=manager.token)
    assert code == 0, err
    assert f"now serves {releases.v1}" in out
    code, out, err = relreq("release", "revert", channel, "--reason", "again", token=manager.token)
    assert code == 1 and err.count("\n") == 1 and "nothing to revert to" in err

    with db.transaction(world.sessions) as s:
        put(s, channel, releases.v2, config=config)
    code, out, err = relreq(
        "release", "revert", channel, "--to", releases.v1, "--reason", "still bad", "--json", token=manager.token
    )
    assert code == 0, err
    assert json.loads(out)["version"] == releases.v1

    code, out, err = relreq("release", "history", channel, "--json", token=manager.token)
    moves = [(h["action"], h["to_version"], h["reason"]) for h in json.loads(out)]
    assert moves == [
        ("publish", releases.v1, None),
        ("publish", releases.v2, None),
        ("revert", releases.v1, "FP storm at the customer"),
        ("publish", releases.v2, None),
        ("revert", releases.v1, "still bad"),
    ]
    code, out, err = relreq("release", "history", channel, token=manager.token)
    assert code == 0 and "FP storm" in out

    code, out, err = relreq("release", "channels", "--json", token=manager.token)
    assert {c["channel"]: c["version"] for c in json.loads(out)}[channel] == releases.v1


def test_only_release_roles_revert_and_other_customers_see_nothing(relreq, world, releases, config):
    customer = world.customer()
    channel = f"customer-{customer}"
    with db.transaction(world.sessions) as s:
        put(s, channel, releases.v1, releases.v2, config=config)
    own = world.user("customer", customer)
    code, _, err = relreq("release", "revert", channel, "--reason", "I do not like it", token=own.token)
    assert code == 1 and "may not revert" in err
    code, out, _ = relreq("release", "channels", "--json", token=own.token)
    assert channel in {c["channel"] for c in json.loads(out)}

    stranger = world.user("customer", world.customer())
    code, out, _ = relreq("release", "channels", "--json", token=stranger.token)
    assert channel not in {c["channel"] for c in json.loads(out)}
    code, _, err = relreq("release", "history", channel, token=stranger.token)
    assert code == 1 and f"no channel '{channel}'" in err
