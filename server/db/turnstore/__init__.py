"""The turn's hot path in storage: accept a message, finish a turn, keep worker leases."""
