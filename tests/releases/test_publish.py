"""Publishing by compare-and-swap, history, channel rules, canary steps, revert — through the services."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from artifacts.bundle import BaseManifest, manifest_fields, seal
from artifacts.signing import FileKeySigner
from artifacts.store import LocalStore
from release_requests import db
from release_requests.audit.models import AuditEvent
from release_requests.clock import db_now
from release_requests.errors import Conflict, InvalidInput, LineBroken, StaleVersion
from release_requests.releases import channels, publishing, registry, stopping
from release_requests.releases.models import ChannelHistory, ChannelPointer
from release_requests.settings import get_settings
from tests.releases.fixtures import SYSTEM, put


def history(session, channel: str) -> list[tuple]:
    rows = session.scalars(select(ChannelHistory).where(ChannelHistory.channel == channel).order_by(ChannelHistory.id))
    return [(h.action, h.from_version, h.to_version) for h in rows]


def test_publish_is_compare_and_swap_with_history_and_audit(session, releases, world, config):
    channel = f"customer-{world.customer()}"
    first = publishing.publish(
        session,
        actor=SYSTEM,
        channel=channel,
        version=releases.v1,
        expected_current=None,
        request_id=None,
        config=config,
        repo_path=get_settings().signature_repo,
    )
    assert (first.version, first.previous_version, first.pointer_version) == (releases.v1, None, 1)
    second = publishing.publish(
        session,
        actor=SYSTEM,
        channel=channel,
        version=releases.v2,
        expected_current=releases.v1,
        request_id=None,
        reason="FP fix",
        config=config,
        repo_path=get_settings().signature_repo,
    )
    assert (second.version, second.previous_version, second.pointer_version) == (releases.v2, releases.v1, 2)
    assert second.rollout_percent == 100 and second.private_to == channel.removeprefix("customer-")

    with pytest.raises(StaleVersion, match=f"is at {releases.v2}, not {releases.v1}") as stale:
        publishing.publish(
            session,
            actor=SYSTEM,
            channel=channel,
            version=releases.v1,
            expected_current=releases.v1,
            request_id=None,
            config=config,
            repo_path=get_settings().signature_repo,
        )
    assert stale.value.details["current_version"] == releases.v2
    with pytest.raises(StaleVersion, match="not nothing"):
        publishing.publish(
            session,
            actor=SYSTEM,
            channel=channel,
            version=releases.v1,
            expected_current=None,
            request_id=None,
            config=config,
            repo_path=get_settings().signature_repo,
        )

    again = publishing.publish(
        session,
        actor=SYSTEM,
        channel=channel,
        version=releases.v2,
        expected_current=releases.v1,
        request_id=None,
        config=config,
        repo_path=get_settings().signature_repo,
    )
    assert again.pointer_version == 2, "republishing the current version is a no-op"
    assert history(session, channel) == [("publish", None, releases.v1), ("publish", releases.v1, releases.v2)]
    events = session.scalars(select(AuditEvent).where(AuditEvent.entity_id == channel).order_by(AuditEvent.seq)).all()
    assert [(e.action, e.after["version"]) for e in events] == [
        ("channel.published", releases.v1),
        ("channel.published", releases.v2),
    ]
    assert events[1].reason == "FP fix"


def test_a_base_reaching_global_stays_on_the_channels_it_passed(session, releases, world, config):
    customer = f"customer-{world.customer()}"
    # shared: start them empty (tests run before this one, in whatever order, may have moved them on)
    session.execute(delete(ChannelPointer).where(ChannelPointer.channel.in_(("internal", "canary", "global"))))
    for channel in ("internal", "canary", customer, "global"):
        put(session, channel, releases.v1, releases.v2, config=config)
    pointers = {p.channel: p.version for p in session.scalars(select(ChannelPointer))}
    assert all(pointers[c] == releases.v2 for c in ("internal", "canary", customer, "global"))


@pytest.mark.parametrize("channel", ["global", "canary", "internal", "customer-{customer}"])
def test_a_private_hotfix_never_leaves_its_customer_channels(session, releases, config, channel):
    with pytest.raises(InvalidInput, match="private to"):
        publishing.publish(
            session,
            actor=SYSTEM,
            channel=channel.format(customer=releases.hotfix_customer),
            version=releases.hotfix,
            expected_current=None,
            request_id=None,
            config=config,
            repo_path=get_settings().signature_repo,
        )


def test_hotfix_channels_follow_the_signed_customer_and_product(session, releases, world, config):
    other = world.customer()
    with pytest.raises(InvalidInput, match="private to"):
        publishing.publish(
            session,
            actor=SYSTEM,
            channel=f"hotfix-{other}-endpoint-agent",
            version=releases.hotfix,
            expected_current=None,
            request_id=None,
            config=config,
            repo_path=get_settings().signature_repo,
        )
    own = f"hotfix-{releases.hotfix_customer}-endpoint-agent"
    pointer = put(session, own, releases.hotfix, config=config)
    assert (pointer.version, pointer.private_to) == (releases.hotfix, releases.hotfix_customer)
    with pytest.raises(InvalidInput, match="base channels"):
        publishing.publish(
            session,
            actor=SYSTEM,
            channel=own,
            version=releases.v1,
            expected_current=releases.hotfix,
            request_id=None,
            config=config,
            repo_path=get_settings().signature_repo,
        )
    with pytest.raises(InvalidInput, match="no customer"):
        publishing.publish(
            session,
            actor=SYSTEM,
            channel="customer-nobody-here",
            version=releases.v1,
            expected_current=None,
            request_id=None,
            config=config,
            repo_path=get_settings().signature_repo,
        )


def test_channel_for_renders_the_configured_templates(config):
    assert (
        channels.channel_for(config=config, kind="false_positive", stage="customer", customer_id="acme", product=None)
        == "customer-acme"
    )
    assert (
        channels.channel_for(
            config=config, kind="private_hotfix", stage="customer", customer_id="acme", product="endpoint-agent"
        )
        == "hotfix-acme-endpoint-agent"
    )
    with pytest.raises(InvalidInput, match="no stage 'global'"):
        channels.channel_for(config=config, kind="private_hotfix", stage="global", customer_id="acme", product="x")


def test_canary_rises_in_configured_steps_after_each_soak(session, releases, config):
    session.execute(delete(ChannelPointer).where(ChannelPointer.channel == "canary"))  # shared: start it empty
    pointer = put(session, "canary", releases.v1, releases.v2, config=config)
    assert (pointer.version, pointer.previous_version) == (releases.v2, releases.v1)
    steps = config.stages.canary.steps
    assert (pointer.rollout_percent, pointer.rollout_step) == (steps[0].percent, 0)
    start = pointer.step_started_at
    advance = lambda at: publishing.advance_rollout(session, actor=SYSTEM, channel="canary", now=at, config=config)  # noqa: E731
    assert advance(start + timedelta(minutes=steps[0].soak_minutes - 1)) == steps[0].percent
    second = start + timedelta(minutes=steps[0].soak_minutes)
    assert advance(second) == steps[1].percent
    assert advance(second) == steps[1].percent, "idempotent within a step"
    third = second + timedelta(minutes=steps[1].soak_minutes)
    assert advance(third) == 100
    assert advance(third + timedelta(days=1)) == 100
    assert [h[0] for h in history(session, "canary")[-3:]] == ["publish", "rollout_step", "rollout_step"]


def test_revert_one_step_then_to_a_named_version(session, releases, world, config):
    channel = f"customer-{world.customer()}"
    put(session, channel, releases.v1, releases.v2, config=config)
    back = stopping.revert(session, actor=SYSTEM, channel=channel, to_version=None, reason="bad base", config=config)
    assert (back.version, back.previous_version) == (releases.v1, None)
    with pytest.raises(Conflict, match="nothing to revert to"):
        stopping.revert(session, actor=SYSTEM, channel=channel, to_version=None, reason="again", config=config)
    put(session, channel, releases.v2, config=config)
    with pytest.raises(InvalidInput, match="never served"):
        stopping.revert(session, actor=SYSTEM, channel=channel, to_version=releases.hotfix, reason="x", config=config)
    named = stopping.revert(
        session, actor=SYSTEM, channel=channel, to_version=releases.v1, reason="v2 again bad", config=config
    )
    assert named.version == releases.v1
    assert [h[0] for h in history(session, channel)] == ["publish", "publish", "revert", "publish", "revert"]


def test_register_is_idempotent_and_refuses_another_manifest_under_a_known_version(
    session, bundles, releases, settings, tmp_path
):
    store = LocalStore(settings.artifacts_dir)
    key = registry.server_public_key(settings.data_dir)
    again = registry.register_release(
        session, actor=SYSTEM, bundle_dir=bundles.v1, store=store, request_id=None, public_key=key
    )
    assert again.version == releases.v1
    assert bundles.fp_sha256 in session.get(type(again), releases.v2).allowlist
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for f in bundles.v1.iterdir():
        (tampered / f.name).write_bytes(f.read_bytes())
    (tampered / "rules.yarc").write_bytes(b"not the rules")
    with pytest.raises(InvalidInput, match="does not match manifest"):
        registry.register_release(
            session, actor=SYSTEM, bundle_dir=tampered, store=store, request_id=None, public_key=key
        )

    # properly signed, but another manifest under a version that is already registered
    resigned = tmp_path / "resigned"
    resigned.mkdir()
    (resigned / "rules.yarc").write_bytes(b"other rules")
    (resigned / "allowlist.tsv").write_bytes((bundles.v1 / "allowlist.tsv").read_bytes())
    original = BaseManifest.model_validate_json((bundles.v1 / "manifest.json").read_bytes())
    signer = FileKeySigner.load(settings.data_dir)
    seal(resigned, original.model_copy(update=manifest_fields(resigned, signer=signer)), signer=signer, store=store)
    with pytest.raises(Conflict, match=f"release {releases.v1} is already registered with another manifest"):
        registry.register_release(
            session, actor=SYSTEM, bundle_dir=resigned, store=store, request_id=None, public_key=key
        )


def _race(world, config, *, channel: str, expected: str | None, versions: list[str]) -> list[tuple]:
    """Two transactions on two connections publish at the same moment; each holds its row for a while."""
    barrier, outcomes = threading.Barrier(len(versions)), []

    def publish(version: str) -> None:
        try:
            with db.transaction(world.sessions) as s:
                barrier.wait()
                p = publishing.publish(
                    s,
                    actor=SYSTEM,
                    channel=channel,
                    version=version,
                    expected_current=expected,
                    request_id=None,
                    config=config,
                    repo_path=get_settings().signature_repo,
                )
                time.sleep(0.2)  # keep the row locked until the other publisher waits on it
                outcomes.append(("won", p.version))
        except StaleVersion as exc:
            outcomes.append(("stale", exc.details["current_version"]))

    threads = [threading.Thread(target=publish, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return sorted(outcomes)


def test_two_publishers_racing_exactly_one_wins(releases, fresh_base, world, settings, config):
    with db.transaction(world.sessions) as s:
        v3 = registry.register_release(
            s,
            actor=SYSTEM,
            bundle_dir=fresh_base,
            store=LocalStore(settings.artifacts_dir),
            request_id=None,
            public_key=registry.server_public_key(settings.data_dir),
        ).version
    new_channel = f"customer-{world.customer()}"
    outcomes = _race(world, config, channel=new_channel, expected=None, versions=[releases.v1, releases.v2])
    winner = next(v for kind, v in outcomes if kind == "won")
    assert outcomes == sorted([("won", winner), ("stale", winner)])

    channel = f"customer-{world.customer()}"
    with db.transaction(world.sessions) as s:
        put(s, channel, releases.v1, config=config)
    outcomes = _race(world, config, channel=channel, expected=releases.v1, versions=[releases.v2, v3])
    winner = next(v for kind, v in outcomes if kind == "won")
    assert outcomes == sorted([("won", winner), ("stale", winner)])
    with db.transaction(world.sessions) as s:
        assert s.get(ChannelPointer, channel).version == winner
        assert history(s, channel) == [("publish", None, releases.v1), ("publish", releases.v1, winner)]

    # the same version from two retrying pipeline workers: both succeed, one move is recorded
    channel = f"customer-{world.customer()}"
    with db.transaction(world.sessions) as s:
        put(s, channel, releases.v1, config=config)
    outcomes = _race(world, config, channel=channel, expected=releases.v1, versions=[releases.v2, releases.v2])
    assert outcomes == [("won", releases.v2), ("won", releases.v2)]
    with db.transaction(world.sessions) as s:
        assert len(history(s, channel)) == 2


def test_a_base_that_would_drop_a_served_fix_is_never_published(session, releases, world, config):
    channel = f"customer-{world.customer()}"
    put(session, channel, releases.v1, releases.v2, config=config)
    with pytest.raises(LineBroken, match=f"does not contain {releases.v2}.*drop the fixes of RR-2026-900001"):
        publishing.publish(
            session,
            actor=SYSTEM,
            channel=channel,
            version=releases.v1,
            expected_current=releases.v2,
            request_id=None,
            config=config,
            repo_path=get_settings().signature_repo,
        )
    assert session.get(ChannelPointer, channel).version == releases.v2


def test_db_now_is_used_for_publication_time(session, releases, world, config):
    channel = f"customer-{world.customer()}"
    before = db_now(session)
    pointer = put(session, channel, releases.v1, config=config)
    assert pointer.published_at >= before
