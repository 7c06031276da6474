"""SLA clocks: pure business-calendar arithmetic for response-time targets (no DB, no I/O)."""
