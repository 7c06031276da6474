"""The migrations build exactly the schema the models describe: a model change without its migration (or a
migration that drifts from the model) fails here, before it reaches a database that was not made by tests."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import release_requests.models  # noqa: F401  (every table registered on the metadata)
from release_requests.db import Base


def test_migrated_schema_matches_the_models(db_url):
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], "models and migrations disagree:\n" + "\n".join(map(str, differences))
