"""`python -m wallet_service.migrate`: bring the configured database to the newest schema."""

import sys

from common.config import current_env, load_env_file
from wallet_service.database import create_db_engine, migrate
from wallet_service.identity import UsernameCollisionError
from wallet_service.settings import WalletSettings


def main() -> None:
    load_env_file()
    settings = WalletSettings.from_env(current_env())
    engine = create_db_engine(settings.database_url, pool_size=1)
    try:
        migrate(engine)
    except UsernameCollisionError as exc:
        print(f"wallet_service.migrate: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    finally:
        engine.dispose()
    print(f"migrated {engine.url.render_as_string(hide_password=True)} to head")


if __name__ == "__main__":
    main()
