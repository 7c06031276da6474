"""Prefect flows: the automated segments between human decisions, and the scheduled watchers.

Thin by design: each flow opens the database through `release_requests.runtime` and calls services.
Business state lives in Postgres; Prefect only holds execution.
"""
