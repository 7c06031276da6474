"""Staged releases to update channels: signed manifests, channel pointers, canary cohorts, telemetry halts."""
