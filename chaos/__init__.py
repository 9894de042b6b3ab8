"""Fault and abuse suite: a bank workload on the real processes, a seeded fault injector
and a ledger checker. Entry point: `python -m chaos.run` (see `make chaos`)."""
