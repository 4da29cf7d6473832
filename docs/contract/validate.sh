#!/usr/bin/env bash
# Validates docs/contract/asyncapi.yaml with the AsyncAPI CLI (`asyncapi validate`, which also
# parses the referenced .avsc files with its Avro schema parser) and openapi.yaml with Redocly
# (`redocly lint`, recommended rules, see redocly.yaml). Both come from the npm registry, pinned,
# installed once into $SAGA_CACHE_DIR/node-tools (outside the clone) and reused. Neither tool
# phones home: AsyncAPI's analytics are disabled by its config file, Redocly's telemetry and
# update check by env. That the documents match the code is checked by
# steps/tests/integration/contract_docs.rs (cargo test), not here.
set -euo pipefail
cd "$(dirname "$0")"

ASYNCAPI_CLI_VERSION=6.2.0
REDOCLY_CLI_VERSION=2.77.0
tools="${SAGA_CACHE_DIR:-$HOME/.cache/saga-conformance}/node-tools"

die() { echo "validate.sh: $*" >&2; exit 1; }
command -v npm >/dev/null && command -v node >/dev/null \
  || die "node and npm are needed (Node.js 20 or later; apt-get install nodejs npm)"

installed() { # package version → true when node-tools holds exactly that version
  node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
    "$tools/node_modules/$1/package.json" "$2" 2>/dev/null
}
if ! installed @asyncapi/cli "$ASYNCAPI_CLI_VERSION" || ! installed @redocly/cli "$REDOCLY_CLI_VERSION"; then
  echo "validate.sh: installing @asyncapi/cli@$ASYNCAPI_CLI_VERSION and @redocly/cli@$REDOCLY_CLI_VERSION into $tools (npm)"
  mkdir -p "$tools"
  # No postinstall may download a browser build (none can be fetched here, and linting needs none).
  PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix "$tools" --no-audit --no-fund --loglevel=error \
    "@asyncapi/cli@$ASYNCAPI_CLI_VERSION" "@redocly/cli@$REDOCLY_CLI_VERSION" >/dev/null \
    || die "npm install into $tools failed: check that the npm registry is reachable"
fi

analytics="$tools/asyncapi-analytics.json"
[ -f "$analytics" ] || echo '{"analyticsEnabled":"false","infoMessageShown":"true","userID":"saga-conformance-ci"}' >"$analytics"

echo "== asyncapi validate asyncapi.yaml (@asyncapi/cli $ASYNCAPI_CLI_VERSION)"
ASYNCAPI_METRICS_CONFIG_PATH="$analytics" SUPPRESS_NO_CONFIG_WARNING=1 NODE_CONFIG_ENV=default \
  "$tools/node_modules/.bin/asyncapi" validate asyncapi.yaml --fail-severity=error

echo "== redocly lint openapi.yaml (@redocly/cli $REDOCLY_CLI_VERSION)"
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
  "$tools/node_modules/.bin/redocly" lint openapi.yaml --config redocly.yaml --format=stylish
echo "validate.sh: both documents are valid"
