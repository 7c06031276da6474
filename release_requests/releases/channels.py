"""Update channels: their names, who may read them, and the pointer records every move shares.

A channel name comes from the templates in `config/stages.toml` (`customer-{customer}`, ...); reading
access follows the pointer's own `private_to` and `staff_only`, never a parsed name. Every pointer move
writes a `channel_history` row through `record_move`, which also has the static update tree rewritten
after the commit (`static_tree`).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from release_requests.audit.service import Actor
from release_requests.config import AppConfig
from release_requests.customers.models import Customer
from release_requests.errors import InvalidInput
from release_requests.releases.models import ChannelHistory, ChannelPointer, Release
from release_requests.releases.static_tree import note_moved

_PLACEHOLDERS = {"customer": r"(?P<customer>[a-z0-9][a-z0-9-]{1,39})", "product": r"(?P<product>[a-z0-9._-]+)"}


def channel_for(*, config: AppConfig, kind: str, stage: str, customer_id: str, product: str | None) -> str:
    """The channel a request of `kind` ships to at `stage` (`[pipelines.*.channels]` in stages.toml)."""
    try:
        name, pipeline = config.stages.pipeline_for(kind)
    except StopIteration:
        raise InvalidInput(f"no release pipeline handles requests of kind '{kind}'", field="kind") from None
    if stage not in pipeline.stages:
        raise InvalidInput(f"pipeline {name} has no stage '{stage}' ({', '.join(pipeline.stages)})", field="stage")
    template = pipeline.channels[stage]
    if "{product}" in template and not product:
        raise InvalidInput(f"channel '{template}' needs a product", field="product")
    return template.format(customer=customer_id, product=product)


def template_regex(template: str) -> re.Pattern:
    parts = re.split(r"\{(customer|product)\}", template)
    return re.compile("".join(_PLACEHOLDERS[p] if i % 2 else re.escape(p) for i, p in enumerate(parts)))


def audience_of(session: Session, *, config: AppConfig, release: Release, channel: str) -> str | None:
    """Who may read `channel` once it serves `release` (a customer id, None = public); refuses wrong channels.

    A hotfix goes only to its own customer's hotfix channels (rendered from the templates with its signed
    customer and product, so ids containing dashes are never mis-parsed); a base only to base channels.
    """
    if release.kind == "hotfix":
        allowed = sorted(
            {
                t.format(customer=release.private_to, product=release.product)
                for pipeline in config.stages.shipping("hotfix")
                for t in pipeline.channels.values()
            }
        )
        if channel not in allowed:
            raise InvalidInput(
                f"hotfix {release.version} is private to {release.private_to}: it may go only to "
                f"{', '.join(allowed) or 'no channel'}, not '{channel}'",
                field="channel",
            )
        return release.private_to
    templates = list(dict.fromkeys(t for p in config.stages.shipping("base") for t in p.channels.values()))
    for template in templates:
        match = template_regex(template).fullmatch(channel)
        if match is None:
            continue
        customer = match.groupdict().get("customer")
        if customer is not None and session.get(Customer, customer) is None:
            raise InvalidInput(f"channel '{channel}': no customer '{customer}'", field="channel")
        return customer
    raise InvalidInput(
        f"base {release.version} may go only to base channels ({', '.join(templates)}), not '{channel}'",
        field="channel",
    )


def channel_customer(config: AppConfig, channel: str) -> str | None:
    """The customer a customer-specific channel belongs to (`customer-<id>`, `hotfix-<id>-<product>`), else None.

    For display filtering only (what a customer may see named); access decisions use the pointer's own
    `private_to`, never a parsed name.
    """
    for pipeline in config.stages.pipelines.values():
        for template in pipeline.channels.values():
            if "{customer}" in template and (match := template_regex(template).fullmatch(channel)):
                return match["customer"]
    return None


def is_staff_channel(config: AppConfig, channel: str) -> bool:
    """The `internal` stage's channels serve the vendor's own machines: staff tokens only, in every view."""
    return any(
        "internal" in p.channels and template_regex(p.channels["internal"]).fullmatch(channel)
        for p in config.stages.pipelines.values()
    )


def is_canary(config: AppConfig, channel: str) -> bool:
    return any(p.channels.get("canary") == channel for p in config.stages.pipelines.values())


def read_pointer(session: Session, channel: str, *, lock: bool = False) -> ChannelPointer | None:
    return session.get(ChannelPointer, channel, populate_existing=True, with_for_update=lock or None)


def pointer_state(pointer: ChannelPointer) -> dict:
    return {
        "version": pointer.version,
        "previous_version": pointer.previous_version,
        "rollout_percent": pointer.rollout_percent,
        "rollout_step": pointer.rollout_step,
        "pointer_version": pointer.pointer_version,
        "private_to": pointer.private_to,
    }


def record_move(
    session: Session,
    *,
    pointer: ChannelPointer,
    from_version: str | None,
    action: str,
    actor: Actor,
    reason: str | None,
    request_id: str | None,
    at: datetime,
) -> ChannelHistory:
    entry = ChannelHistory(
        channel=pointer.channel,
        from_version=from_version,
        to_version=pointer.version,
        action=action,
        rollout_percent=pointer.rollout_percent,
        actor=actor.name,
        actor_id=actor.id,
        reason=reason,
        request_id=request_id,
        at=at,
    )
    session.add(entry)
    session.flush()
    note_moved(session, pointer.channel)  # the static update tree follows once this transaction commits
    return entry


def halted_state(pointer: ChannelPointer) -> dict:
    return {
        "halted_at": pointer.halted_at,
        "halted_reason": pointer.halted_reason,
        "halted_version": pointer.halted_version,
    }


def halted_channels(session: Session, channels: list[str]) -> list[str]:
    """Which of these channels an automatic halt stopped (they take nothing until resumed)."""
    if not channels:
        return []
    return list(
        session.scalars(
            select(ChannelPointer.channel).where(
                ChannelPointer.channel.in_(channels), ChannelPointer.halted_at.is_not(None)
            )
        )
    )
