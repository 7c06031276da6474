"""Regression corpora described in git, synthesised at run time.

No real malware (and no contiguous EICAR string) is ever stored in git: a sample is a list of
parts — text, hex, deterministic filler bytes, or the EICAR test string, which is assembled here
from two halves. Malicious samples name the `namespace.rule` expected to detect them.

    [[sample]]
    name = "trojan-win32-dropper-001"
    expect = "trojan.Trojan_Win32_Dropper_001"        # malicious corpus only
    parts = [{ filler = 512, seed = "a" }, { text = "RRSIM-TROJAN-001-9f2c" }, { hex = "4d5a9000", times = 2 }]
"""

import hashlib
import tomllib
from typing import Self

import git
from pydantic import BaseModel, Field, ValidationError, model_validator

from artifacts.errors import RepoLayoutError, first_problem
from artifacts.sigrepo import CLEAN_CORPUS_PATH, MALICIOUS_CORPUS_PATH, read_text

_EICAR_HEAD = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$"
_EICAR_TAIL = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def eicar() -> bytes:
    """The 68-byte EICAR test string, only ever whole in memory."""
    return (_EICAR_HEAD + _EICAR_TAIL).encode("ascii")


def eicar_halves() -> tuple[str, str]:
    """The two halves, for rules that must match EICAR without containing it."""
    return _EICAR_HEAD, _EICAR_TAIL


def filler(size: int, seed: str) -> bytes:
    """Deterministic pseudo-random bytes (SHA-256 in counter mode): same seed, same bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


class Part(BaseModel, extra="forbid"):
    text: str | None = None
    hex: str | None = None
    eicar: bool = False
    filler: int | None = Field(default=None, ge=0, le=64 << 20)
    seed: str = ""
    times: int = Field(default=1, ge=1, le=1 << 20)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Self:
        kinds = [self.text is not None, self.hex is not None, self.eicar, self.filler is not None]
        if sum(kinds) != 1:
            raise ValueError("a part needs exactly one of text, hex, eicar, filler")
        if self.hex is not None:
            bytes.fromhex(self.hex)  # ValueError -> validation error naming the part
        return self

    def render(self) -> bytes:
        if self.text is not None:
            chunk = self.text.encode("utf-8")
        elif self.hex is not None:
            chunk = bytes.fromhex(self.hex)
        elif self.eicar:
            chunk = eicar()
        else:
            chunk = filler(self.filler or 0, self.seed)
        return chunk * self.times


class Sample(BaseModel, extra="forbid"):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    expect: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*\.[A-Za-z_]\w*$")
    parts: list[Part] = Field(min_length=1)

    def render(self) -> bytes:
        return b"".join(part.render() for part in self.parts)


class Corpus(BaseModel):
    clean: list[Sample]
    malicious: list[Sample]


def parse_samples(text: str, *, origin: str, malicious: bool) -> list[Sample]:
    """Samples of one corpus file; problems are reported as `origin: sample[i] (name): ...`."""
    try:
        raw = tomllib.loads(text).get("sample", [])
    except tomllib.TOMLDecodeError as exc:
        raise RepoLayoutError(f"{origin}: {exc}") from exc
    samples: list[Sample] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        label = f"{origin}: sample[{index}] ({item.get('name', '?')})"
        try:
            sample = Sample(**item)
        except ValidationError as exc:
            raise RepoLayoutError(f"{label}: {first_problem(exc)}") from exc
        if malicious != (sample.expect is not None):
            need = "needs" if malicious else "must not have"
            raise RepoLayoutError(f"{label}: {need} 'expect = \"namespace.rule\"'")
        if sample.name in seen:
            raise RepoLayoutError(f"{label}: duplicate sample name")
        seen.add(sample.name)
        samples.append(sample)
    return samples


def load_corpus(commit: git.Commit) -> Corpus:
    """Both corpora as defined in the commit."""
    return Corpus(
        clean=parse_samples(read_text(commit, CLEAN_CORPUS_PATH), origin=CLEAN_CORPUS_PATH, malicious=False),
        malicious=parse_samples(read_text(commit, MALICIOUS_CORPUS_PATH), origin=MALICIOUS_CORPUS_PATH, malicious=True),
    )
