#!/usr/bin/env bash
# Headless Chromium for the one browser test (tests/deployments/test_server_ui.py): installed
# from Debian's packages when missing and we may (root with apt-get). In CI (CI=true) a
# missing browser is a failure of that test, so install it there; elsewhere the test skips.
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing chromium (Debian package) for the browser test"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "could not install chromium; the browser test will say so" >&2
else
  echo "chromium is not installed: the browser test skips (CI=true: fails)" >&2
fi
