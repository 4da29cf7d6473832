#!/usr/bin/env bash
# Checks a run's machine-readable reports with validators other than the kit's own:
#   conformance.json  against docs/conformance-record.schema.json   (python jsonschema, Draft 7)
#   ctrf.json         with the CTRF reference implementation's validate()   (npm ctrf, ajv)
#   junit.xml         against the Jenkins JUnit schema docs/junit/junit-10.xsd   (python xmlschema;
#                     the file as pytest's test suite ships it, MIT, Gregory Boissinot)
# Usage: docs/check-reports.sh REPORT_DIR (default reports/latest). The tools come from PyPI and
# the npm registry, pinned, installed once into $SAGA_CACHE_DIR/report-tools (outside the clone).
# The unit tests check the same two JSON schemas without the network (steps/src/record/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
reports="$(cd "${1:-reports/latest}" && pwd)"

CTRF_VERSION=0.3.0
JSONSCHEMA_VERSION=4.26.0
XMLSCHEMA_VERSION=4.3.2
tools="${SAGA_CACHE_DIR:-$HOME/.cache/saga-conformance}/report-tools"

die() { echo "check-reports.sh: $*" >&2; exit 1; }
for f in conformance.json ctrf.json junit.xml; do
  [ -f "$reports/$f" ] || die "$reports/$f not found: run saga-conformance run --report-dir $reports first"
done
command -v npm >/dev/null && command -v node >/dev/null || die "node and npm are needed (apt-get install nodejs npm)"
command -v python3 >/dev/null || die "python3 is needed"

mkdir -p "$tools"
if ! node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
  "$tools/node_modules/ctrf/package.json" "$CTRF_VERSION" 2>/dev/null; then
  echo "check-reports.sh: installing ctrf@$CTRF_VERSION into $tools (npm)"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error "ctrf@$CTRF_VERSION" >/dev/null \
    || die "npm install into $tools failed: check that the npm registry is reachable"
fi
if ! "$tools/venv/bin/python" -c 'import jsonschema, xmlschema' 2>/dev/null; then
  echo "check-reports.sh: installing jsonschema $JSONSCHEMA_VERSION and xmlschema $XMLSCHEMA_VERSION into $tools/venv (pip)"
  python3 -m venv "$tools/venv" || die "python3 -m venv failed (apt-get install python3-venv)"
  "$tools/venv/bin/pip" install --quiet "jsonschema==$JSONSCHEMA_VERSION" "xmlschema==$XMLSCHEMA_VERSION" \
    || die "pip install into $tools/venv failed: check that PyPI is reachable"
fi

echo "== conformance.json against conformance-record.schema.json (jsonschema $JSONSCHEMA_VERSION)"
"$tools/venv/bin/python" - "$here/conformance-record.schema.json" "$reports/conformance.json" <<'PY'
import json, sys, jsonschema
schema, record = (json.load(open(p)) for p in sys.argv[1:3])
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(record), key=lambda e: list(e.path))
for e in errors:
    print(f"  {'/'.join(map(str, e.path)) or '$'}: {e.message}")
sys.exit(f"conformance.json: {len(errors)} error(s)" if errors else print("  valid") or 0)
PY

echo "== ctrf.json with ctrf@$CTRF_VERSION validate()"
NODE_PATH="$tools/node_modules" node - "$reports/ctrf.json" <<'JS'
const { validate } = require("ctrf");
const result = validate(JSON.parse(require("fs").readFileSync(process.argv[2], "utf8")));
for (const e of result.errors ?? []) console.log(`  ${e.path ?? ""} ${e.message}`);
if (!result.valid) { console.error("ctrf.json: not valid CTRF"); process.exit(1); }
console.log("  valid");
JS

echo "== junit.xml against junit-10.xsd (xmlschema $XMLSCHEMA_VERSION)"
"$tools/venv/bin/python" - "$here/junit/junit-10.xsd" "$reports/junit.xml" <<'PY'
import sys, xmlschema
schema = xmlschema.XMLSchema(sys.argv[1])
errors = list(schema.iter_errors(sys.argv[2]))
for e in errors:
    print(f"  {e.path}: {e.reason}")
sys.exit(f"junit.xml: {len(errors)} error(s)" if errors else print("  valid") or 0)
PY
