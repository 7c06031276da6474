"""`relreq report daily` and `relreq report customer` through the real entry point and the live API."""

from __future__ import annotations

import json

from tests.reports.conftest import check_figures


def period_args(story) -> tuple[str, ...]:
    return ("--customer", story.customer_id, "--from", story.start.isoformat(), "--to", story.end.isoformat())


def test_json_is_the_api_report(relreq, story, world):
    as_of = story.as_of.isoformat()
    code, out, err = relreq(
        "report", "customer", *period_args(story), "--as-of", as_of, "--json", token=story.tam.token
    )
    assert code == 0, err
    check_figures(json.loads(out), story)
    with world.client(story.tam) as c:
        assert json.loads(out) == c.get("/api/v1/reports/customer", params=story.params).json()


def test_the_summary_reads_as_a_table(relreq, story):
    code, out, err = relreq(
        "report", "customer", *period_args(story), "--as-of", story.as_of.isoformat(), token=story.customer_user.token
    )
    assert code == 0, err
    assert "requests" in out and "40.0 %" in out
    assert "2 met, 3 breached, 1 withdrawn before an answer, 1 still running" in " ".join(out.split())
    assert "1 critical" in out and "25.0 %" in out
    for letter in "GBD":
        assert story.ids[letter] in out  # the breaches
    assert "no qualified response yet" in out


def test_pdf_is_written_where_it_says(relreq, story, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = relreq("report", "customer", *period_args(story), "--format", "pdf", token=story.tam.token)
    assert code == 0, err
    written = tmp_path / f"report-{story.customer_id}-{story.start}_{story.end}.pdf"
    assert written.read_bytes().startswith(b"%PDF") and str(written) in out.replace("\n", "")
    target = tmp_path / "q.pdf"
    code, out, err = relreq(
        "report", "customer", *period_args(story), "--format", "pdf", "--out", str(target), token=story.tam.token
    )
    assert code == 0 and target.read_bytes().startswith(b"%PDF")


def test_csv_and_html_go_to_stdout_or_out(relreq, story, tmp_path):
    code, out, err = relreq("report", "customer", *period_args(story), "--format", "csv", token=story.tam.token)
    assert code == 0, err
    assert all(story.ids[x] in out for x in "ABCDEFG")
    page = tmp_path / "report.html"
    code, out, err = relreq(
        "report",
        "customer",
        *period_args(story),
        "--format",
        "html",
        "--language",
        "ru",
        "--out",
        str(page),
        token=story.tam.token,
    )
    assert code == 0, err
    assert "wrote" in out and story.ids["G"] in page.read_text()


def test_bad_input_is_one_line_naming_the_rule(relreq, story):
    code, out, err = relreq(
        "report", "customer", "--customer", story.customer_id, "--quarter", "2026Q5", token=story.tam.token
    )
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "quarter '2026Q5'" in err and "YYYYQ1..YYYYQ4" in err
    code, _, err = relreq(
        "report",
        "customer",
        "--customer",
        story.customer_id,
        "--from",
        "2026-10-10",
        "--to",
        "2026-10-01",
        token=story.tam.token,
    )
    assert code == 1 and "before 'from'" in err
    code, _, err = relreq("report", "customer", *period_args(story), token=story.other_customer_user.token)
    assert code == 1 and f"no customer '{story.customer_id}'" in err and "404" in err
    code, _, err = relreq("report", "customer", *period_args(story), "--format", "docx", token=story.tam.token)
    assert code == 2 and "docx" in err


def test_daily_in_text_and_json(relreq, story):
    at = story.as_of.isoformat()
    code, out, err = relreq("report", "daily", "--at", at, "--json", token=story.customer_user.token)
    assert code == 0, err
    assert [r["request_id"] for r in json.loads(out)["rows"]] == [story.ids[x] for x in "GBDAXC"]
    code, out, err = relreq("report", "daily", "--at", at, "--format", "json", token=story.customer_user.token)
    assert [r["request_id"] for r in json.loads(out)["rows"]] == [story.ids[x] for x in "GBDAXC"]
    code, out, err = relreq("report", "daily", "--at", at, token=story.customer_user.token)
    assert code == 0, err
    assert all(story.ids[x] in out for x in "GBDAXC") and story.ids["E"] not in out
    code, out, err = relreq("report", "daily", "--at", at, "--format", "html", token=story.tam.token)
    assert code == 0 and out.lstrip().lower().startswith("<!doctype html") and story.ids["G"] in out


def test_help(relreq):
    code, out, _ = relreq("report", "--help")
    assert code == 0 and "daily" in out and "customer" in out
    code, out, _ = relreq("report", "customer", "--help")
    assert code == 0 and "--quarter" in out and "--out" in out
