"""Shared fixtures. Each family lives in its own module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.models",
    "tests.fixtures.emulator",
]
