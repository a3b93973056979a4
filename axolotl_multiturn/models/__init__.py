"""Real models prepared offline from packages on the registry (no model hub)."""
