"""Wallet gRPC service: users, credentials, multi-currency balances and the ledger."""
