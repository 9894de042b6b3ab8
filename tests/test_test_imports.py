"""Tests import shared helpers from tests.support only, never from another test module or a
conftest (fixtures reach tests through pytest, not through imports)."""

from __future__ import annotations

from pathlib import Path

from tests.support import imported_modules

TESTS = Path(__file__).parent


def test_tests_import_helpers_only_from_the_support_package() -> None:
    offenders = {
        f"{path.relative_to(TESTS)}: {module}"
        for path in TESTS.rglob("*.py")
        for module in imported_modules(path)
        if module.startswith("tests.")
        and module != "tests.support"
        and not module.startswith("tests.support.")
    }
    assert offenders == set()
