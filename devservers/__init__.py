"""Local stand-ins for the services release-requests talks to — not product code.

`relreq demo`, the tests and the benchmarks run against these instead of the internet:

- `LocalSlack` — the Slack Web API methods the deliverer uses, over real HTTP (`devservers.slack`);
- `LocalSmtp` — an aiosmtpd SMTP server with AUTH and STARTTLS (`devservers.smtp`, needs `aiosmtpd`);
- `LocalWebhook` — an HTTPS (or loopback HTTP) receiver that checks the webhook signature (`devservers.webhook`);
- `LocalEventsV2` — a paging service's Events API v2 endpoint that validates events and keeps incidents by
  `dedup_key` (`devservers.events_v2`);
- `LocalNginx` — Debian's nginx on loopback in a folder of its own, serving a static update tree the way a web
  server or CDN in front of the fleet would (`devservers.nginx`, needs the `nginx-light` package);
- `signed_interaction()` — a Slack button press, signed as Slack signs it;
- `free_port()` — the one helper that picks a free TCP port.

Installed with the `demo` extra (`pip install 'release-requests[demo]'`; the `test` extra includes it).
"""

from devservers.events_v2 import EventDelivery, Incident, LocalEventsV2
from devservers.net import free_port
from devservers.nginx import LocalNginx
from devservers.slack import LocalSlack, SlackCall, signed_interaction, slack_signature
from devservers.smtp import LocalSmtp, ReceivedMail
from devservers.tls import self_signed_certificate
from devservers.webhook import LocalWebhook, WebhookDelivery, verify_webhook, webhook_signature

__all__ = [
    "EventDelivery",
    "Incident",
    "LocalEventsV2",
    "LocalNginx",
    "LocalSlack",
    "LocalSmtp",
    "LocalWebhook",
    "ReceivedMail",
    "SlackCall",
    "WebhookDelivery",
    "free_port",
    "self_signed_certificate",
    "signed_interaction",
    "slack_signature",
    "verify_webhook",
    "webhook_signature",
]
