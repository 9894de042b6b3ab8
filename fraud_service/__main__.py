"""`python -m fraud_service`: read settings, then serve until SIGTERM."""

from __future__ import annotations

import sys

from common.config import ConfigError, current_env, load_env_file
from common.logs import setup_logging
from fraud_service.server import serve
from fraud_service.settings import FraudSettings


def main() -> int:
    load_env_file()
    try:
        settings = FraudSettings.from_env(current_env())
    except ConfigError as exc:
        print(f"fraud_service: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
