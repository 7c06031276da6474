"""One pass over a mailbox in a process of its own, for the crash test: with `RR_CRASH_AT=mail:ingested` it
SIGKILLs itself after filing a message and before the cursor's commit.

    RR_CRASH_AT=mail:ingested python -m tests.mail.poll_and_die DB_URL IMAP_URL DATA_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from release_requests import db
from release_requests.config import load_config
from release_requests.settings import Settings
from release_requests.workflows.mailbox import poll_once

REPO = Path(__file__).resolve().parents[2]


def main(db_url: str, imap_url: str, data_dir: str) -> None:
    settings = Settings(database_url=db_url, data_dir=Path(data_dir), config_dir=REPO / "config", imap_url=imap_url)
    engine = db.make_engine(db_url)
    try:
        poll_once(db.make_sessionmaker(engine), settings=settings, config=load_config(REPO / "config"))
    finally:
        engine.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:])
