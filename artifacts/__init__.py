"""Building what gets shipped: signature bases (git + YARA-X) and private hotfixes.

Plain inputs (paths, refs, pydantic specs), plain results (pydantic manifests and reports).
This package must not import `release_requests`, `flows` or `prefect`.
"""
