"""`relreq artifacts build-hotfix` with the customer's licence read from the database."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import REPO


@pytest.fixture
def product_config(product, tmp_path, monkeypatch):
    spec, commits = product
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    build = json.dumps(spec.build)
    (config / "products.toml").write_text(
        f'[products.endpoint-agent]\nrepo = "{spec.repo}"\nbuild = {build}\n'
        'timeout_seconds = 30\noutput = "dist/*.bin"\n'
    )
    monkeypatch.setenv("RR_CONFIG_DIR", str(config))
    return commits


def test_licensed_customer_gets_a_signed_private_hotfix(relreq, world, product_config, tmp_path):
    customer = world.customer(licensed_products=[{"product": "endpoint-agent", "versions": ">=11,<12"}])
    code, out, err = relreq(
        "artifacts",
        "build-hotfix",
        "--product",
        "endpoint-agent",
        "--version",
        "11.2.0",
        "--commits",
        product_config["clean_fix"],
        "--customer",
        customer,
        "--out",
        str(tmp_path / "hotfixes"),
        "--json",
    )
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["private_to"] == customer and manifest["branch"].startswith(f"hotfix/{customer}/11.2.0-")


def test_unlicensed_or_unknown_customer_is_refused_before_anything_is_built(relreq, world, product_config, tmp_path):
    unlicensed = world.customer(licensed_products=[{"product": "mail-gateway", "versions": ""}])
    args = (
        "artifacts",
        "build-hotfix",
        "--product",
        "endpoint-agent",
        "--version",
        "11.2.0",
        "--commits",
        product_config["clean_fix"],
        "--out",
        str(tmp_path / "hotfixes"),
    )
    code, _, err = relreq(*args, "--customer", unlicensed)
    assert code != 0 and "licence does not cover endpoint-agent 11.2.0" in err and err.strip().count("\n") == 0
    code, _, err = relreq(*args, "--customer", "no-such-customer")
    assert code != 0 and "unknown" in err
    assert not (tmp_path / "hotfixes").exists()
