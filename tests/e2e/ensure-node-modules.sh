#!/bin/sh
# Installs the e2e test's npm dependencies (the openai SDK) into tests/e2e/node_modules
# when they are missing or older than package-lock.json. Used as a ctest fixture.
set -eu
cd "$(dirname "$0")"
npm=${NPM:-npm}
if [ -f node_modules/.package-lock.json ] && [ -d node_modules/openai ] &&
    [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "e2e: node_modules is up to date"
    exit 0
fi
echo "e2e: npm ci in $(pwd) (node $(node --version), npm $("$npm" --version))"
"$npm" ci --no-audit --no-fund
