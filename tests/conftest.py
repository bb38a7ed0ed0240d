"""Fixtures live in tests/fixtures/, one module per real component, so each can be read on its own."""

pytest_plugins = [
    "tests.fixtures.firestore_emulator",
    "tests.fixtures.model_servers",
    "tests.fixtures.chat_server",
    "tests.fixtures.chromium",
]
