"""What the receiving server said about a message's sender (RFC 8601 Authentication-Results), and whether
that is enough for `[email] require_authentication`.

Anyone can write an Authentication-Results header into the message they send, so only the headers whose
authserv-id is one of `trusted_authserv_ids` (our own receiving servers, which strip or override foreign
ones) are read; the topmost such header — the one our server added last — counts. A pass is only worth
something when it speaks for the domain in From: the SPF (`smtp.mailfrom`) or DKIM (`header.d`) domain
must be the From domain, or one a parent of the other (relaxed alignment, without a public-suffix list).
DMARC already checks alignment itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

Requirement = Literal["none", "spf_or_dkim", "dmarc"]
_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([A-Za-z0-9_-]+)(?:/[0-9]+)?\s*=\s*([A-Za-z0-9_-]+)(.*)$", re.S)
_PROPERTY = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\s*=\s*\"?([^\s\";]+)\"?")


@dataclass(frozen=True)
class AuthVerdict:
    """The results of one trusted header ("none" for a method it did not report, or with no header)."""

    authserv_id: str | None = None
    spf: str = "none"
    dkim: str = "none"
    dmarc: str = "none"
    spf_domain: str | None = None
    dkim_domains: tuple[str, ...] = ()  # of the DKIM signatures that passed
    spf_aligned: bool = False
    dkim_aligned: bool = False

    def as_record(self) -> dict:
        """What the mail row keeps (`inbound_mail.authentication`)."""
        return {**asdict(self), "dkim_domains": list(self.dkim_domains)}


def _aligned(domain: str | None, from_domain: str | None) -> bool:
    if not domain or not from_domain:
        return False
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    return domain == from_domain or domain.endswith("." + from_domain) or from_domain.endswith("." + domain)


def _split(header: str) -> list[str]:
    """The header's `;`-separated parts, comments removed (nested ones too)."""
    previous = None
    while previous != header:
        previous, header = header, _COMMENT.sub(" ", header)
    return [part.strip() for part in header.split(";")]


def read_verdict(headers: Iterable[str], *, trusted: Iterable[str], from_domain: str | None) -> AuthVerdict:
    """The verdict of the topmost header from a trusted server; an empty verdict if there is none."""
    trusted_ids = {t.strip().lower() for t in trusted if t.strip()}
    for header in headers:
        parts = _split(" ".join(header.split()))
        authserv = parts[0].split()[0].lower() if parts and parts[0] else ""
        if authserv not in trusted_ids:
            continue
        results: dict[str, list[tuple[str, dict[str, str]]]] = {}
        for part in parts[1:]:
            match = _RESULT.match(part)
            if match is None:
                continue
            method, result, rest = match.group(1).lower(), match.group(2).lower(), match.group(3)
            props = {f"{p}.{n}".lower(): v.lower() for p, n, v in _PROPERTY.findall(rest)}
            results.setdefault(method, []).append((result, props))
        spf = results.get("spf", [("none", {})])[0]
        spf_domain = spf[1].get("smtp.mailfrom", "").rpartition("@")[2] or spf[1].get("smtp.helo") or None
        dkim_all = results.get("dkim", [])
        passed = tuple(
            p.get("header.d") or p.get("header.i", "").rpartition("@")[2] for r, p in dkim_all if r == "pass"
        )
        dkim = "pass" if passed else (dkim_all[0][0] if dkim_all else "none")
        return AuthVerdict(
            authserv_id=authserv,
            spf=spf[0],
            dkim=dkim,
            dmarc=results.get("dmarc", [("none", {})])[0][0],
            spf_domain=spf_domain,
            dkim_domains=tuple(d for d in passed if d),
            spf_aligned=spf[0] == "pass" and _aligned(spf_domain, from_domain),
            dkim_aligned=any(_aligned(d, from_domain) for d in passed),
        )
    return AuthVerdict()


def meets(require: Requirement, verdict: AuthVerdict) -> tuple[bool, str]:
    """Whether `verdict` satisfies `require`, and why (in words, for the mail row)."""
    if require == "none":
        return True, "authentication not required"
    if verdict.authserv_id is None:
        return False, "no Authentication-Results from a trusted server (trusted_authserv_ids)"
    said = f"{verdict.authserv_id}: spf={verdict.spf} dkim={verdict.dkim} dmarc={verdict.dmarc}"
    if require == "dmarc":
        return (verdict.dmarc == "pass"), f"DMARC {'passed' if verdict.dmarc == 'pass' else 'did not pass'} ({said})"
    if verdict.spf_aligned or verdict.dkim_aligned:
        return True, f"SPF or DKIM passed for the From domain ({said})"
    return False, f"neither SPF nor DKIM passed for the From domain ({said})"
