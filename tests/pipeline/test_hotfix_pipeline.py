"""A private hotfix through the pipeline: commits cherry-picked onto the customer's release, built, signed,
published only to that customer's hotfix channel — never to everyone."""

from __future__ import annotations

import json
import shutil

from sqlalchemy import select

from release_requests import db
from release_requests.pipeline import segments, service
from release_requests.pipeline.schemas import FixInput, SignoffIn
from release_requests.releases.models import ChannelPointer, Release
from release_requests.requests.schemas import Accept, SubmitRequest
from release_requests.requests.states import Status
from release_requests.settings import Settings
from release_requests.workflows import intake
from tests.conftest import REPO, Builder, git, make_product_repo


def test_private_hotfix_goes_internal_then_only_to_its_customer(world_pipeline, tmp_path):
    w = world_pipeline
    spec, commits = make_product_repo(tmp_path)
    repo, fix = spec.repo, commits["clean_fix"]
    config_dir = tmp_path / "config"
    shutil.copytree(REPO / "config", config_dir)
    (config_dir / "products.toml").write_text(
        f'[products.endpoint-agent]\nrepo = "{repo}"\nbuild = {json.dumps(spec.build)}\ntimeout_seconds = 30\n'
        'output = "dist/*.bin"\n'
    )
    seg = segments.Segment(w.seg.sessions, Settings(**{**w.settings.model_dump(), "config_dir": config_dir}), w.config)
    with db.transaction(seg.sessions) as s:
        b = Builder(s, w.config)
        customer = b.customer(licensed_products=[{"product": "endpoint-agent", "versions": ">=11,<12"}])
        duty, triager = b.person("duty_manager"), b.person("triage")
        engineer, manager = b.person("build_engineer"), b.person("release_manager")
        data = SubmitRequest(
            customer_id=customer.id,
            kind="private_hotfix",
            severity=1,  # critical: no soak between stages, still two sign-offs
            channel="tam",
            title="Crash on scan",
            product="endpoint-agent",
            product_version="11.2.0",
        )
        request = intake.submit(s, actor=duty, data=data, config=w.config)
        intake.triage(s, actor=triager, request_id=request.id, decision=Accept(decision="accept"), config=w.config)
        service.provide_fix(s, actor=engineer, request_id=request.id, data=FixInput(type="commits", commits=[fix[:12]]))
        rid, cid = request.id, customer.id
    trigger = w.trigger(rid, "build:")
    assert "verified" in segments.run_build(seg, request_id=rid, attempt=1, trigger_key=trigger.key)
    other_engineer = None
    with db.transaction(seg.sessions) as s:
        b = Builder(s, w.config)
        other_engineer = b.person("build_engineer")  # the builder may not sign his own build
        service.sign(
            s,
            actor=other_engineer,
            request_id=rid,
            data=SignoffIn(stage="internal"),
            config=w.config,
            repo_path=w.settings.signature_repo,
        )
    t = w.trigger(rid, "publish:internal:")
    segments.run_publish(seg, request_id=rid, stage="internal", build_id=int(t.step.split(":")[2]), trigger_key=t.key)
    with db.transaction(seg.sessions) as s:
        for person in (other_engineer, manager):
            service.sign(
                s,
                actor=person,
                request_id=rid,
                data=SignoffIn(stage="customer"),
                config=w.config,
                repo_path=w.settings.signature_repo,
            )
    t = w.trigger(rid, "publish:customer:")
    segments.run_publish(seg, request_id=rid, stage="customer", build_id=int(t.step.split(":")[2]), trigger_key=t.key)
    with db.transaction(seg.sessions) as s:
        status = s.get(type(request), rid).status
        pointers = {p.channel: (p.version, p.private_to) for p in s.scalars(select(ChannelPointer))}
        build = service.latest_build(s, request_id=rid)
    assert status == Status.released  # two stages only: a private hotfix never goes global
    assert pointers[f"hotfix-{cid}-endpoint-agent"] == (build.version, cid)
    assert "global" not in pointers and build.branch.startswith(f"hotfix/{cid}/11.2.0-")
    assert build.version == f"{cid}/endpoint-agent/11.2.0-1"

    # a second hotfix for the same customer, product and version keeps the first fix: its own release line
    (repo / "src" / "fix2.c").write_text("int fixed_leak = 1;\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "fix leak on update")
    second_fix = git(repo, "rev-parse", "HEAD")
    with db.transaction(seg.sessions) as s:
        second = intake.submit(s, actor=duty, data=data.model_copy(update={"title": "Leak"}), config=w.config)
        intake.triage(s, actor=triager, request_id=second.id, decision=Accept(decision="accept"), config=w.config)
        service.provide_fix(
            s, actor=engineer, request_id=second.id, data=FixInput(type="commits", commits=[second_fix])
        )
    trigger = w.trigger(second.id, "build:")
    assert "verified" in segments.run_build(seg, request_id=second.id, attempt=1, trigger_key=trigger.key)
    with db.transaction(seg.sessions) as s:
        rebuilt = service.latest_build(s, request_id=second.id)
        picked = s.get(Release, rebuilt.version).manifest["cherry_picked"]
    assert picked == [fix, second_fix], "the customer's shipped fix is carried into the next hotfix"
