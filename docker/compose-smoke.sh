#!/usr/bin/env bash
# Proves the compose stack (docker/compose.yaml) completes an order: `up`, a product, one order
# (POST /api/v1/orders), its payment in PAYMENT_WAIT, then `down` — always, also on failure or
# Ctrl-C (trap). .ci/run runs it after ./saga test; about a minute once the images are built.
#
#   docker/compose-smoke.sh
#
# Brings the engine and images up to date first (docker/images.sh: cached, only what changed).
# Compose: `docker compose` (the v2 plugin) when present, else `docker-compose`; when neither is
# there, installs Debian's docker-compose (apt-get, needs root). The stack's ports are free ones
# picked here (the compose file's SAGA_*_PORT), so it runs beside anything else on the machine.
#
# Environment:
#   SAGA_SMOKE_TIMEOUT   seconds for the stack to become healthy, and again for the order to
#                        reach PAYMENT_WAIT (default 120)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${SAGA_CACHE_DIR:-$HOME/.cache/saga-conformance}"
timeout_s="${SAGA_SMOKE_TIMEOUT:-120}"
project="saga-smoke-$$"

die() { echo "compose-smoke: ERROR: $*" >&2; exit 1; }
log() { echo "compose-smoke: $*" >&2; }

ensure_compose() {
  if docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; then return 0; fi
  [[ "$(id -u)" == 0 ]] || die "no Compose: install Debian's docker-compose (sudo apt-get install docker-compose) and rerun"
  log "installing docker-compose (apt-get)"
  mkdir -p "$cache/logs"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose >"$cache/logs/apt-compose.log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$cache/logs/apt-compose.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose >>"$cache/logs/apt-compose.log" 2>&1 ||
      { tail -n 20 "$cache/logs/apt-compose.log" >&2; die "apt-get install docker-compose failed (log: $cache/logs/apt-compose.log)"; }
  fi
}

compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -p "$project" -f "$here/compose.yaml" "$@"
  else
    docker-compose -p "$project" -f "$here/compose.yaml" "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Polls `$1` (a command) until it succeeds or $timeout_s pass; $2 names what is awaited.
wait_for() {
  local deadline=$(( $(date +%s) + timeout_s ))
  until eval "$1"; do
    (( $(date +%s) < deadline )) || die "$2 not reached within ${timeout_s} s"
    sleep 1
  done
}

json_field() {  # $1 = field; reads a JSON object (or the first element of an array) on stdin
  python3 -c 'import json, sys; v = json.load(sys.stdin); v = v[0] if isinstance(v, list) and v else v; print(v.get(sys.argv[1], "") if isinstance(v, dict) else "")' "$1"
}

bash "$here/images.sh" ensure-engine
bash "$here/images.sh" build saga-kafka saga-postgres saga-apicurio-registry \
  saga-order-service saga-product-service saga-payment-service >/dev/null
ensure_compose

export SAGA_POSTGRES_PORT SAGA_KAFKA_PORT SAGA_REGISTRY_PORT SAGA_ORDER_PORT SAGA_PRODUCT_PORT SAGA_PAYMENT_PORT
SAGA_POSTGRES_PORT=$(free_port); SAGA_KAFKA_PORT=$(free_port); SAGA_REGISTRY_PORT=$(free_port)
SAGA_ORDER_PORT=$(free_port); SAGA_PRODUCT_PORT=$(free_port); SAGA_PAYMENT_PORT=$(free_port)
order="http://127.0.0.1:$SAGA_ORDER_PORT" product="http://127.0.0.1:$SAGA_PRODUCT_PORT"
payment="http://127.0.0.1:$SAGA_PAYMENT_PORT"

finish() {
  local rc=$?
  if (( rc != 0 )); then
    log "failed; the services' last log lines:"
    compose logs --tail 30 order-service product-service payment-service >&2 || true
  fi
  log "down"
  compose down --volumes --remove-orphans --timeout 10 >/dev/null 2>&1 || log "WARNING: compose down failed (project $project)"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

started=$(date +%s)
log "up (project $project; order $order, product $product, payment $payment)"
# Compose starts each service once its dependencies report healthy (depends_on conditions).
compose up -d >/dev/null
wait_for "curl -fsS $order/health >/dev/null 2>&1 && curl -fsS $product/health >/dev/null 2>&1 && curl -fsS $payment/health >/dev/null 2>&1" \
  "the three services answering /health"
log "stack healthy after $(( $(date +%s) - started )) s"

product_id="SMOKE-$$"
curl -fsS -X PUT "$product/api/v1/products/$product_id" -H 'content-type: application/json' \
  -d '{"name":"Smoke test keyboard","price":15000,"stock":10}' >/dev/null || die "PUT /api/v1/products/$product_id failed"
order_id=$(curl -fsS -X POST "$order/api/v1/orders" -H 'content-type: application/json' -H 'X-User-Id: smoke-user' \
  -d "{\"storeId\":\"S1\",\"items\":[{\"productId\":\"$product_id\",\"quantity\":2,\"unitPrice\":15000}]}" | json_field orderId) ||
  die "POST /api/v1/orders failed"
[[ -n "$order_id" ]] || die "POST /api/v1/orders answered without an orderId"
log "order $order_id placed"

placed=$(date +%s)
wait_for "[[ \"\$(curl -fsS '$payment/api/v1/payments?orderId=$order_id' 2>/dev/null | json_field status)\" == PAYMENT_WAIT ]]" \
  "a payment in PAYMENT_WAIT for order $order_id"
status=$(curl -fsS "$order/api/v1/orders/$order_id" | json_field status)
log "order $order_id: payment PAYMENT_WAIT after $(( $(date +%s) - placed )) s, order $status"
[[ "$status" == ORDER_CONFIRMED ]] || die "order $order_id is $status, expected ORDER_CONFIRMED"
log "OK: the compose stack completed an order ($(( $(date +%s) - started )) s)"
