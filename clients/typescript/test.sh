#!/usr/bin/env bash
# Installs, checks the generated types against ../openapi.json, runs the tests against
# a running stewrd (STEWRD_TEST_URL, STEWRD_TEST_ADMIN_TOKEN), and builds the tarball.
set -euo pipefail
cd "$(dirname "$0")"
export STEWRD_TEST_URL="${STEWRD_TEST_URL:-http://127.0.0.1:18080}"
export STEWRD_TEST_ADMIN_TOKEN="${STEWRD_TEST_ADMIN_TOKEN:-dev-admin-token}"

npm ci --no-audit --no-fund
npm run check-types
npm test
rm -f stewrd-client-*.tgz
npm pack
# The tarball must hold the built entry points and the generated types they import.
listing="$(tar -tzf stewrd-client-*.tgz)"
for f in dist/index.js dist/index.d.ts dist/node.js dist/schema.d.ts README.md CHANGELOG.md; do
  grep -qx "package/$f" <<<"$listing" || { echo "npm pack: $f missing from the tarball" >&2; exit 1; }
done
rm -f stewrd-client-*.tgz
