"""Documents people keep: HTML pages turned into PDF (WeasyPrint), for reports and Health Check reports.

A document is rendered from our own templates, with everything a customer typed escaped; still, nothing in
it may make the renderer fetch anything: the URL fetcher allows only inline `data:` URLs, so a stray
`<img src>` in a report can neither reach the network nor read a local file while the PDF is made.
"""

from __future__ import annotations

from dataclasses import dataclass

from release_requests.errors import DomainError


class DocumentError(DomainError):
    code = "document_error"


@dataclass(frozen=True)
class Attachment:
    """A file that goes with a message or a download: name, media type, bytes."""

    filename: str
    content_type: str
    content: bytes


def html_to_pdf(html: str, *, title: str | None = None) -> bytes:
    """One HTML document → PDF bytes (A4, fonts from the system: DejaVu covers Cyrillic)."""
    # imported here: WeasyPrint and Pango take about half a second to load, only PDF work pays it
    import weasyprint
    from weasyprint.urls import URLFetcher

    # only inline data: URLs; anything else is dropped (a missing image), never fetched
    fetcher = URLFetcher(allowed_protocols={"data"}, allow_redirects=False, timeout=1)
    document = weasyprint.HTML(string=html, url_fetcher=fetcher, base_url="data:,")
    pdf = document.write_pdf()
    if not pdf:
        raise DocumentError(f"could not render {title or 'the document'} to PDF")
    return pdf
