"""Command definitions. Local commands open the database; working commands call the API."""

from __future__ import annotations

import typer

from release_requests.cli import local, pipeline, remote, report_settings, serving, sla
from release_requests.cli.artifacts import artifacts_app, sigrepo_app
from release_requests.cli.healthchecks import healthcheck_app
from release_requests.cli.intake import intake_app
from release_requests.cli.notifications import notifications_app
from release_requests.cli.paging import page_app
from release_requests.cli.releases import channels_app, client_app, release_app
from release_requests.cli.reports import report_app

app = typer.Typer(
    name="relreq",
    help="Release requests: file, triage and follow urgent antivirus fixes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(local.db_app, name="db")
app.add_typer(local.customers_app, name="customers")
app.add_typer(local.users_app, name="users")
app.add_typer(local.audit_app, name="audit")
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(sigrepo_app, name="sigrepo")
app.add_typer(remote.samples_app, name="samples")
app.add_typer(notifications_app, name="notifications")
app.add_typer(release_app, name="release")
app.add_typer(channels_app, name="channels")
app.add_typer(client_app, name="client")
app.add_typer(sla.sla_app, name="sla")
app.add_typer(sla.duty_app, name="duty")
app.add_typer(sla.leave_app, name="leave")
app.add_typer(page_app, name="page")
app.add_typer(intake_app, name="intake")
app.add_typer(healthcheck_app, name="healthcheck")
app.add_typer(report_app, name="report")
report_app.add_typer(report_settings.report_prefs_app, name="prefs")
for command in (report_settings.digest, report_settings.note, report_settings.notes):
    report_app.command(command.__name__)(command)
for command in (
    sla.queue,
    sla.respond,
    sla.severity,
    pipeline.pipeline,
    pipeline.approve,
    pipeline.fix,
    pipeline.split,
    pipeline.close,
):
    app.command(command.__name__)(command)
app.command("revert-fix")(pipeline.revert_fix)
app.command("serve")(serving.serve)
app.command("worker")(serving.worker)
app.command("demo")(local.demo)
for command in (
    remote.submit,
    remote.list_requests,
    remote.show,
    remote.timeline,
    remote.triage,
    remote.answer,
    remote.cancel,
):
    app.command(command.__name__.replace("list_requests", "list"))(command)
