"""One exception hierarchy for the artifacts library.

Every failure the library reports on purpose is an `ArtifactError`, so callers (CLI, flows, API)
map exactly one type to "refused, nothing was built". Each message names what went wrong and
where (`rules/trojan/x.yar:12:5: ...`, `allowlist/sha256.tsv:7: ...`), because the reader is an
engineer under SLA pressure who should not have to open a debugger.
"""


class ArtifactError(Exception):
    """Base class: a refused or failed artifact operation (nothing committed or stored)."""


class InvalidInput(ArtifactError):
    """An argument is malformed (author, request id, family name, file path...)."""


class RepoLayoutError(ArtifactError):
    """A signature-repository file is missing or malformed (allowlist, corpus, rules layout)."""


class RuleCompileError(ArtifactError):
    """YARA-X reported errors or warnings; carries every diagnostic as `file:line:column: ...`."""

    def __init__(self, diagnostics: list[str]):
        self.diagnostics = diagnostics
        super().__init__("; ".join(diagnostics))


class DetectionError(ArtifactError):
    """The engine's verdict on a sample contradicts the requested fix."""


class GitRefError(ArtifactError):
    """A branch, tag or commit is missing, or would be clobbered."""


class CherryPickConflict(ArtifactError):
    """Cherry-picking a fix onto a release tag conflicted; carries the conflicting files."""

    def __init__(self, commit: str, files: list[str]):
        self.commit = commit
        self.files = files
        super().__init__(f"cherry-pick of {commit} conflicts in: {', '.join(files)}")


class BuildFailed(ArtifactError):
    """A product build command failed, timed out or produced no artifacts."""


class LicenceRefused(ArtifactError):
    """The customer's licence does not cover the product and version."""


class ConfigError(ArtifactError):
    """A reviewed configuration file (config/products.toml) is missing or invalid."""


class IntegrityError(ArtifactError):
    """Stored or bundled bytes do not hash to what was recorded."""


class SignatureError(IntegrityError):
    """A manifest signature does not verify with the given public key."""


class SigningKeyError(ArtifactError):
    """The signing key cannot be created, read, or is too widely readable."""


class CrossCheckError(ArtifactError):
    """The independent second engine (ClamAV) could not run."""


class ObjectMissing(ArtifactError):
    """The content-addressed store has no object with that digest."""


def first_problem(exc) -> str:
    """`field: message` of a pydantic ValidationError's first error, for one-line messages."""
    first = exc.errors()[0]
    where = ".".join(map(str, first["loc"]))
    return f"{where}: {first['msg']}" if where else first["msg"]
