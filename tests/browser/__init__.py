"""End-to-end tests in a real browser (Debian's Chromium through Playwright) against `python -m chatapp`."""
