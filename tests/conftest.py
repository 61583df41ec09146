"""Shared fixtures. Backend fixtures live in tests/fixtures/ and load as plugins."""

pytest_plugins = ["tests.fixtures.common", "tests.fixtures.postgres"]
