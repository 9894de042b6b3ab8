"""REST+JSON gateway in front of the wallet gRPC service."""
