"""Fraud scoring service: stateless rules behind fraud.v1.FraudService."""
