"""Progress reporting for long operations, decoupled from any UI.

Library functions call `progress(done, total, label)`; the CLI passes a rich progress bar,
flows pass nothing.
"""

from typing import Protocol


class Progress(Protocol):
    def __call__(self, done: int, total: int, label: str) -> None: ...


def silent(done: int, total: int, label: str) -> None:
    """Default reporter: callers that do not watch progress pay nothing."""
