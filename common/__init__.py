"""Plumbing shared by the three processes: settings helpers, logs, gRPC server set-up, limits."""
