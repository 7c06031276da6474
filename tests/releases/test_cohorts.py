"""Canary cohorts: the configured share of 10,000 clients, stable per client, growing monotonically."""

from __future__ import annotations

import pytest

from release_requests.releases.cohorts import in_cohort

CLIENTS = [f"host-{i:05d}.corp.example" for i in range(10_000)]


@pytest.fixture(scope="module")
def percents(config) -> list[int]:
    return [step.percent for step in config.stages.canary.steps]


def test_share_of_10000_clients_matches_each_configured_step(percents):
    for percent in percents:
        share = sum(in_cohort(channel="canary", client_id=c, percent=percent) for c in CLIENTS) / len(CLIENTS)
        assert abs(share - percent / 100) <= 0.015, (percent, share)


def test_a_client_keeps_its_answer_and_stays_in_as_the_percentage_rises(percents):
    before = None
    for percent in percents:
        cohort = {c for c in CLIENTS if in_cohort(channel="canary", client_id=c, percent=percent)}
        assert cohort == {c for c in CLIENTS if in_cohort(channel="canary", client_id=c, percent=percent)}
        if before is not None:
            assert before <= cohort, "a client inside at a lower percentage must stay inside"
        before = cohort
    assert before == set(CLIENTS)  # the last step is 100 %


def test_a_client_without_an_id_waits_for_everyone():
    assert not in_cohort(channel="canary", client_id=None, percent=99)
    assert in_cohort(channel="canary", client_id=None, percent=100)
