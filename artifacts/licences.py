"""Licence coverage: a private hotfix is built only for a product version the customer licenses.

A licence is a plain list of grants `{"product": "endpoint-agent", "versions": ">=11,<12"}`;
`versions` is a PEP 440 specifier set, empty meaning every version. Pre-releases of a covered
line are covered too (a hotfix may target a release candidate the customer runs).
"""

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ValidationError

from artifacts.errors import InvalidInput, LicenceRefused, first_problem


class LicenceGrant(BaseModel):
    product: str
    versions: str = ""


def check_licence(*, customer: str, grants: list[dict], product: str, version: str) -> LicenceGrant:
    """The grant covering `product` at `version`, or LicenceRefused saying why not."""
    try:
        wanted = Version(version)
    except InvalidVersion as exc:
        raise InvalidInput(f"version {version!r}: not a PEP 440 version") from exc
    for index, raw in enumerate(grants):
        try:
            grant = LicenceGrant.model_validate(raw)
            specifiers = SpecifierSet(grant.versions)
        except ValidationError as exc:
            raise InvalidInput(f"licence of {customer}: grant[{index}]: {first_problem(exc)}") from exc
        except InvalidSpecifier as exc:
            raise InvalidInput(f"licence of {customer}: grant[{index}]: {exc}") from exc
        if grant.product == product and specifiers.contains(wanted, prereleases=True):
            return grant
    held = "; ".join(f"{g.get('product')} {g.get('versions') or '(all versions)'}" for g in grants) or "no grants"
    raise LicenceRefused(f"customer {customer}: licence does not cover {product} {version} (holds: {held})")
