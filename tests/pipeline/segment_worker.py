"""Runs one pipeline segment in its own process, so a test can SIGKILL it mid-way (RR_CRASH_AT).

python -m tests.pipeline.segment_worker build REQUEST_ID ATTEMPT TRIGGER_KEY
python -m tests.pipeline.segment_worker publish REQUEST_ID STAGE BUILD_ID TRIGGER_KEY
"""

from __future__ import annotations

import sys

from release_requests.config import get_config
from release_requests.pipeline import segments
from release_requests.runtime import session_factory
from release_requests.settings import get_settings


def main(argv: list[str]) -> None:
    seg = segments.Segment(sessions=session_factory(), settings=get_settings(), config=get_config())
    if argv[0] == "build":
        print(segments.run_build(seg, request_id=argv[1], attempt=int(argv[2]), trigger_key=argv[3]))
    else:
        print(segments.run_publish(seg, request_id=argv[1], stage=argv[2], build_id=int(argv[3]), trigger_key=argv[4]))


if __name__ == "__main__":
    main(sys.argv[1:])
