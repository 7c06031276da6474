"""Product build definitions from the reviewed `config/products.toml`.

[products.endpoint-agent]
repo = "/srv/git/endpoint-agent"   # relative paths are relative to the config file
build = ["make", "dist"]           # argv, run in a checkout of the hotfix branch
timeout_seconds = 1800
output = "dist/*.tar.gz"           # glob of the artifacts to collect, relative to the checkout
tag_format = "v{version}"          # release tag of a version (default)
"""

import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from artifacts.errors import ConfigError, first_problem


class ProductSpec(BaseModel, extra="forbid"):
    name: str
    repo: Path
    build: list[str] = Field(min_length=1)
    timeout_seconds: int = Field(gt=0)
    output: str = Field(min_length=1)
    tag_format: str = Field(default="v{version}", pattern=r"\{version\}")

    def tag_for(self, version: str) -> str:
        return self.tag_format.format(version=version)


def load_products(path: Path) -> dict[str, ProductSpec]:
    """Every product in the file, repo paths resolved against the file's folder."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8")).get("products", {})
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: missing") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    products = {}
    for name, fields in raw.items():
        try:
            spec = ProductSpec(name=name, **fields)
        except ValidationError as exc:
            raise ConfigError(f"{path}: products.{name}: {first_problem(exc)}") from exc
        products[name] = spec.model_copy(update={"repo": (path.parent / spec.repo).resolve()})
    return products


def product_spec(path: Path, name: str) -> ProductSpec:
    products = load_products(path)
    if name not in products:
        raise ConfigError(f"{path}: no product {name!r} (known: {', '.join(sorted(products)) or 'none'})")
    return products[name]
