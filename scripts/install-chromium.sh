#!/usr/bin/env bash
# Debian's Chromium for the browser tests. Playwright drives it; Playwright's own browser download is never used
# (it cannot work offline and would pin a second browser).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: Chromium is missing; install Debian's 'chromium' package (apt-get install chromium)." >&2
  echo "install-chromium: the browser tests will skip locally (and fail under CI=true) until it is there." >&2
  exit 0
fi
echo "install-chromium: installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
