#!/usr/bin/env bash
# Container health probes that need nothing but bash and coreutils (no curl in slim images).
# Installed as /usr/local/bin/healthcheck in the saga-* images.
#
#   healthcheck http [PORT] [PATH]   GET http://127.0.0.1:PORT/PATH answers 2xx
#                                    (PORT defaults to $HTTP_PORT, PATH to /health)
#   healthcheck kafka [PORT]         a Kafka ApiVersions request on 127.0.0.1:PORT gets an answer,
#                                    i.e. the broker is serving requests (PORT defaults to the first
#                                    non-controller listener in /opt/kafka/config/server.properties)
# Exit 0 when healthy, 1 otherwise (the message goes to stdout, which docker keeps in the health log).
set -uo pipefail

fail() { echo "unhealthy: $*"; exit 1; }
timeout_s="${HEALTHCHECK_TIMEOUT:-3}"

case "${1:-}" in
  http)
    port="${2:-${HTTP_PORT:-}}"; path="${3:-/health}"
    [[ -n "$port" ]] || fail "no port (argument or HTTP_PORT)"
    status=$(timeout "$timeout_s" bash -c '
      exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
      printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$1" >&3
      IFS= read -r line <&3 && printf "%s" "$line"' "$port" "$path" 2>/dev/null) || fail "no answer on 127.0.0.1:$port"
    [[ "$status" =~ ^HTTP/1\.[01]\ 2[0-9][0-9] ]] || fail "GET $path: ${status:-empty reply}"
    echo "healthy: GET $path -> ${status%$'\r'}"
    ;;
  kafka)
    port="${2:-}"
    if [[ -z "$port" ]]; then
      props=/opt/kafka/config/server.properties
      listeners=$(grep -E '^listeners=' "$props" 2>/dev/null | tail -n1 | cut -d= -f2-)
      controllers=$(grep -E '^controller\.listener\.names=' "$props" 2>/dev/null | tail -n1 | cut -d= -f2-)
      IFS=',' read -ra entries <<<"$listeners"
      for entry in "${entries[@]}"; do
        name="${entry%%://*}"
        [[ ",$controllers," == *",$name,"* ]] && continue
        port="${entry##*:}"; break
      done
      [[ -n "$port" ]] || fail "no broker listener found in $props"
    fi
    # ApiVersions v0 request: size 12 | api_key 18 | api_version 0 | correlation_id 1 | client_id "hc"
    reply=$(timeout "$timeout_s" bash -c '
      exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
      printf "\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x01\x00\x02hc" >&3
      head -c 8 <&3 | od -An -tx1 | tr -d " \n"' "$port" 2>/dev/null) || fail "no ApiVersions answer on 127.0.0.1:$port"
    [[ ${#reply} -eq 16 && "${reply:8:8}" == 00000001 ]] || fail "unexpected ApiVersions answer '$reply' on 127.0.0.1:$port"
    echo "healthy: Kafka ApiVersions answered on 127.0.0.1:$port"
    ;;
  *)
    echo "usage: healthcheck http [PORT] [PATH] | healthcheck kafka [PORT]" >&2
    exit 2
    ;;
esac
