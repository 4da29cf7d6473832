#!/usr/bin/env bash
# Docker engine + local images of the reference stack, on machines with package registries but no
# image registry (see DESIGN.md §5). Users with internet need none of this except `build` of the
# service images: every Dockerfile defaults to debian:bookworm-slim.
#
#   docker/images.sh ensure-engine        start a Docker engine if `docker info` fails (installs
#                                         docker.io when dockerd is missing); idempotent
#   docker/images.sh base [--rebuild]     if debian:bookworm-slim is absent locally, create
#                                         saga-base:bookworm (debootstrap + docker import); cached
#   docker/images.sh build [--rebuild] [IMAGE...]
#                                         build the images (all by default), skipping those whose
#                                         inputs are unchanged; --rebuild forces; sizes at the end
#   docker/images.sh list                 the images and their sizes
#
# Images: saga-kafka:<kafka version of docker/kafka/pom.xml>, saga-postgres:15,
# saga-apicurio-registry:<apicurio version of docker/apicurio/pom.xml>, saga-order-service,
# saga-product-service, saga-payment-service (tag latest), and the kit itself,
# saga-conformance:<workspace version of Cargo.toml> (docker/kit/Dockerfile: the suite against an
# external implementation, for other teams' CI). Built only when named: saga-order-service:failpoints,
# saga-product-service:failpoints, saga-payment-service:failpoints (or `build failpoints` for the
# three) — the services with seeded faults, for `saga-conformance selftest --backend containers`.
# Service and kit images package host-built release binaries from ${CARGO_TARGET_DIR:-~/.cache/saga-conformance/target}/release
# (built with `cargo build --release --workspace --bins` when missing; --cargo-build forces that).
# Each image carries a label saga.inputs = hash of its build context + base image id; `build`
# rebuilds an image whose inputs changed (e.g. a newer binary) even without --rebuild.
#
# Environment:
#   SAGA_CACHE_DIR        cache root (default ~/.cache/saga-conformance): dockerd.log, logs, jars
#   SAGA_DOCKERD_FLAGS    dockerd flags to use instead of probing (e.g. "--storage-driver=vfs")
#   SAGA_DOCKERD_TIMEOUT  seconds to wait for the engine (default 60)
#   SAGA_DEBIAN_MIRROR    Debian mirror for the base image (default: the one apt uses here)
#   SAGA_BASE_IMAGE       base image for all Dockerfiles (default: debian:bookworm-slim if present,
#                         else saga-base:bookworm)
#   SAGA_JAVA_HOME        a Java 21+ to jlink the registry image's runtime from (default: the newest
#                         Java 21+ among JAVA_HOME and /usr/lib/jvm/*)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${SAGA_CACHE_DIR:-$HOME/.cache/saga-conformance}"
logdir="$cache/logs"
target_dir="${CARGO_TARGET_DIR:-$cache/target}"
official_base=debian:bookworm-slim
local_base=saga-base:bookworm
kafka_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml" | head -n1)"
apicurio_version="$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' "$here/apicurio/pom.xml" | head -n1)"
kit_version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)"

die() { echo "images.sh: ERROR: $*" >&2; exit 1; }
log() { echo "images.sh: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# name -> kind:arg (order = build order)
declare -A services=(
  [saga-order-service]="order-service:8081"
  [saga-product-service]="product-service:8082"
  [saga-payment-service]="payment-service:8083"
)
all_images=("saga-kafka:$kafka_version" "saga-postgres:15" "saga-apicurio-registry:$apicurio_version"
            saga-order-service saga-product-service saga-payment-service "saga-conformance:$kit_version")

mkdir -p "$cache" "$logdir"

# ------------------------------------------------------------------------------------------------
# Engine
# ------------------------------------------------------------------------------------------------
engine_up() { docker info >/dev/null 2>&1; }

# dockerd started by someone (maybe us, earlier) and still alive?
dockerd_pid() {
  local pid
  for f in /var/run/docker.pid "$cache/dockerd.pid"; do
    [[ -s "$f" ]] || continue
    pid="$(cat "$f")"
    if [[ -n "$pid" && -d "/proc/$pid" ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]; then
      echo "$pid"; return 0
    fi
  done
  return 1
}

# Poll `docker info` until it answers, the process dies, or the deadline passes.
wait_engine() {
  local pid="$1" deadline=$(( $(date +%s) + ${SAGA_DOCKERD_TIMEOUT:-60} ))
  while (( $(date +%s) < deadline )); do
    engine_up && return 0
    [[ -d "/proc/$pid" ]] || return 1
    sleep 0.2
  done
  return 1
}

# A container must really start (storage driver, cgroups, runc) — checked when an image is at hand.
engine_smoke_test() {
  local img
  for img in "$official_base" "$local_base"; do
    if docker image inspect "$img" >/dev/null 2>&1; then
      docker run --rm --network none "$img" true >>"$cache/dockerd.log" 2>&1
      return
    fi
  done
  return 0
}

start_dockerd() {  # $1 = flags; prints pid
  local flags="$1" pid
  echo "===== $(date -u +%FT%TZ) images.sh: dockerd $flags" >>"$cache/dockerd.log"
  # setsid: own session, so it outlives this script and its process group
  # shellcheck disable=SC2086
  setsid dockerd $flags >>"$cache/dockerd.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$cache/dockerd.pid"
  echo "$pid"
}

stop_our_dockerd() {  # only the pid we started
  local pid="$1" deadline
  kill "$pid" 2>/dev/null || return 0
  deadline=$(( $(date +%s) + 20 ))
  while [[ -d "/proc/$pid" ]] && (( $(date +%s) < deadline )); do sleep 0.2; done
  [[ -d "/proc/$pid" ]] && kill -9 "$pid" 2>/dev/null || true
}

# A running engine not started with --ip=127.0.0.1 (nor "ip" in daemon.json) publishes ports
# without an explicit host address on all interfaces.
warn_default_bind() {
  local pid cmdline=""
  pid=$(dockerd_pid) || return 0
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  if [[ "$cmdline" != *"--ip=127.0.0.1"* ]] && ! grep -qs '"ip"[[:space:]]*:[[:space:]]*"127.0.0.1"' /etc/docker/daemon.json; then
    log "engine: WARNING: dockerd runs without --ip=127.0.0.1: ports published without a host address bind 0.0.0.0"
  fi
}

cmd_ensure_engine() {
  local t0 pid flags candidates=()
  t0=$(now)
  if engine_up; then
    log "engine: running ($(docker info --format '{{.ServerVersion}}, storage {{.Driver}}' 2>/dev/null))"
    warn_default_bind
    return 0
  fi
  [[ "$(id -u)" == 0 ]] || die "the engine is not running and starting it needs root"

  if ! command -v dockerd >/dev/null; then
    log "engine: dockerd missing, apt-get install docker.io"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >"$logdir/apt-docker.log" 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$logdir/apt-docker.log" 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >>"$logdir/apt-docker.log" 2>&1 ||
        { tail -n 20 "$logdir/apt-docker.log" >&2; die "apt-get install docker.io failed (log: $logdir/apt-docker.log)"; }
    fi
  fi
  command -v docker >/dev/null || die "docker CLI missing after installing docker.io"

  if pid=$(dockerd_pid); then
    log "engine: dockerd (pid $pid) is starting; waiting"
    wait_engine "$pid" || die "dockerd pid $pid does not answer; see $cache/dockerd.log"
    log "engine: up after $(since "$t0") s"
    return 0
  fi

  # Flags to try: explicit, then what worked last time, then defaults, then fallbacks for
  # sandboxes (no overlayfs; no iptables -> no NAT for containers, ports still published by
  # docker-proxy; image builds use --network host so they need no NAT).
  # --ip=127.0.0.1: ports published without a host address (`-P`, `-p 5432`, testcontainers)
  # bind 127.0.0.1 instead of 0.0.0.0 and [::].
  if [[ -n "${SAGA_DOCKERD_FLAGS+x}" ]]; then
    candidates=("$SAGA_DOCKERD_FLAGS")
  else
    [[ -s "$cache/dockerd.flags" ]] && candidates+=("$(cat "$cache/dockerd.flags")")
    candidates+=("--ip=127.0.0.1" "--ip=127.0.0.1 --storage-driver=vfs"
                 "--ip=127.0.0.1 --storage-driver=vfs --iptables=false --ip6tables=false --ip-masq=false")
  fi
  for flags in "${candidates[@]}"; do
    pid=$(start_dockerd "$flags")
    if wait_engine "$pid" && engine_smoke_test; then
      echo "$flags" >"$cache/dockerd.flags"
      log "engine: dockerd ${flags:-(default flags)} up after $(since "$t0") s (pid $pid, storage $(docker info --format '{{.Driver}}'), log $cache/dockerd.log)"
      return 0
    fi
    log "engine: dockerd ${flags:-(default flags)} failed; last log lines:"
    tail -n 8 "$cache/dockerd.log" | sed 's/^/    /' >&2
    stop_our_dockerd "$pid"
  done
  die "no dockerd configuration worked; see $cache/dockerd.log"
}

# ------------------------------------------------------------------------------------------------
# Base image
# ------------------------------------------------------------------------------------------------
base_image() {
  if [[ -n "${SAGA_BASE_IMAGE:-}" ]]; then echo "$SAGA_BASE_IMAGE"
  elif docker image inspect "$official_base" >/dev/null 2>&1; then echo "$official_base"
  else echo "$local_base"; fi
}

cmd_base() {  # $1 = rebuild (0/1), $2 = 1 when the engine is known to be up
  local rebuild="$1" t0
  [[ "${2:-0}" == 1 ]] || cmd_ensure_engine
  if [[ -z "${SAGA_BASE_IMAGE:-}" ]] && docker image inspect "$official_base" >/dev/null 2>&1; then
    log "base: $official_base present; nothing to do"
    return 0
  fi
  if [[ "$rebuild" != 1 ]] && docker image inspect "$local_base" >/dev/null 2>&1; then
    log "base: $local_base present (docker/images.sh base --rebuild to recreate)"
    return 0
  fi
  t0=$(now)
  log "base: creating $local_base with debootstrap (a few minutes)"
  "$here/base/build-base.sh" "$local_base"
  docker run --rm --network none "$local_base" true || die "a container from $local_base does not start"
  log "base: $local_base created in $(since "$t0") s, $(image_size "$local_base")"
}

# ------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------
image_size() { docker image inspect "$1" --format '{{.Size}}' 2>/dev/null | awk '{ printf "%.0f MB", $1 / 1e6 }'; }

# hash of a build context + build args (+ base image id): the image's saga.inputs label
inputs_hash() {  # $1 = context dir, rest = strings
  local ctx="$1"; shift
  { (cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); printf '%s\n' "$@"; } |
    sha256sum | cut -c1-16
}

built=()
build_one() {  # name context [build-arg ...]
  local name="$1" ctx="$2"; shift 2
  local base base_id hash current args=() t0 logf
  base="$(base_image)"
  base_id="$(docker image inspect "$base" --format '{{.Id}}')"
  hash="$(inputs_hash "$ctx" "$base_id" "$@")"
  current="$(docker image inspect "$name" --format '{{ index .Config.Labels "saga.inputs" }}' 2>/dev/null || true)"
  if [[ "$rebuild" != 1 && "$current" == "$hash" ]]; then
    log "build: $name up to date ($(image_size "$name")), skipped"
    return 0
  fi
  [[ -n "$current" && "$rebuild" != 1 ]] && log "build: $name inputs changed, rebuilding"
  [[ "$base" != "$official_base" ]] && args+=(--build-arg "BASE_IMAGE=$base")
  for a in "$@"; do args+=(--build-arg "$a"); done
  logf="$logdir/build-${name%%:*}.log"
  t0=$(now)
  log "build: $name (log $logf)"
  # --network host: apt inside RUN needs no container NAT (works with dockerd --iptables=false)
  if ! DOCKER_BUILDKIT=0 docker build --network host --force-rm --label "saga.inputs=$hash" \
        "${args[@]}" -t "$name" "$ctx" >"$logf" 2>&1; then
    tail -n 30 "$logf" >&2
    die "docker build of $name failed (log $logf)"
  fi
  log "build: $name built in $(since "$t0") s, $(image_size "$name")"
  built+=("$name")
}

# Temporary build contexts live under one directory removed on exit (created in the main shell:
# new_ctx runs in $(...) subshells).
ctx_root=""
init_ctx_root() {
  [[ -n "$ctx_root" ]] && return 0
  ctx_root="$(mktemp -d /var/tmp/saga-images.XXXXXX)"
  trap 'rm -rf "$ctx_root"' EXIT
}
new_ctx() { mktemp -d "$ctx_root/ctx.XXXXXX"; }

build_kafka() {
  local name="saga-kafka:$kafka_version" libs="$cache/kafka-libs" ctx
  "$here/fetch-maven.sh" kafka "$libs"
  ctx="$(new_ctx)"
  cp "$here/kafka/Dockerfile" "$here/kafka/entrypoint.sh" "$here/kafka/tools.sh" "$here/kafka/log4j2.yaml" \
     "$here/kafka/server.properties.example" "$ctx/"
  cp "$here/base/healthcheck.sh" "$ctx/"
  mkdir "$ctx/libs"
  cp "$libs"/*.jar "$ctx/libs/"
  build_one "$name" "$ctx"
}

# A small Java runtime for the registry image, linked once per Java build into the cache.
registry_jre() {
  local java_home release key jre="$cache/apicurio-jre"
  java_home="$("$here/find-java21.sh")" || exit 1
  release="$(sha256sum "$java_home/release" | cut -c1-16)"
  key="$java_home $release"
  if [[ "$(cat "$jre/.linked-from" 2>/dev/null)" != "$key" ]]; then
    log "build: linking a Java runtime for the registry from $java_home (jlink)"
    rm -rf "$jre"
    "$java_home/bin/jlink" --output "$jre" --strip-debug --no-man-pages --no-header-files --compress=zip-6 \
      --add-modules java.se,jdk.unsupported,jdk.zipfs,jdk.management,jdk.naming.dns,jdk.crypto.cryptoki,jdk.localedata,jdk.jfr,jdk.net,jdk.security.auth \
      >&2 || die "jlink from $java_home failed"
    echo "$key" >"$jre/.linked-from"
  fi
  echo "$jre"
}

build_registry() {
  local name="saga-apicurio-registry:$apicurio_version" dist="$cache/apicurio" jre ctx
  "$here/fetch-maven.sh" apicurio "$dist"
  jre="$(registry_jre)"
  ctx="$(new_ctx)"
  cp "$here/apicurio/Dockerfile" "$here/base/healthcheck.sh" "$ctx/"
  cp -a "$jre" "$ctx/jre"
  rm -f "$ctx/jre/.linked-from"
  mkdir "$ctx/app"
  cp -a "$dist"/. "$ctx/app/"
  rm -f "$ctx/app/.fetch-complete"
  build_one "$name" "$ctx"
}

build_postgres() {
  build_one "saga-postgres:15" "$here/postgres"
}

ensure_binaries() {
  local missing=() bin
  for bin in order-service product-service payment-service saga-conformance; do
    [[ -x "$target_dir/release/$bin" ]] || missing+=("$bin")
  done
  if [[ ${#missing[@]} -eq 0 && "$cargo_build" != 1 ]]; then return 0; fi
  local t0; t0=$(now)
  log "cargo: building release binaries into $target_dir (missing: ${missing[*]:-none}); waits if another build holds the lock; log $logdir/cargo-release.log"
  if ! (cd "$repo" && CARGO_TARGET_DIR="$target_dir" cargo build --release --workspace --bins) >"$logdir/cargo-release.log" 2>&1; then
    tail -n 40 "$logdir/cargo-release.log" >&2
    die "cargo build --release failed"
  fi
  log "cargo: done in $(since "$t0") s"
}

# The services with seeded faults (the self-test's `*-failpoints` binaries; docs/selftest.md).
ensure_failpoint_binaries() {
  local missing=() bin
  for bin in order-service product-service payment-service; do
    [[ -x "$target_dir/release/$bin-failpoints" ]] || missing+=("$bin-failpoints")
  done
  if [[ ${#missing[@]} -eq 0 && "$cargo_build" != 1 ]]; then return 0; fi
  local t0; t0=$(now)
  log "cargo: building the failpoint binaries into $target_dir (missing: ${missing[*]:-none}); log $logdir/cargo-failpoints.log"
  if ! (cd "$repo" && CARGO_TARGET_DIR="$target_dir" cargo build --release --workspace \
        --features order-service/failpoints,product-service/failpoints,payment-service/failpoints \
        --bin order-service-failpoints --bin product-service-failpoints --bin payment-service-failpoints) \
        >"$logdir/cargo-failpoints.log" 2>&1; then
    tail -n 40 "$logdir/cargo-failpoints.log" >&2
    die "cargo build of the failpoint binaries failed"
  fi
  log "cargo: done in $(since "$t0") s"
}

build_service() {  # image name (without tag), [failpoints]
  local name="$1" variant="${2:-}" spec bin port ctx
  spec="${services[$name]}"; bin="${spec%%:*}"; port="${spec##*:}"
  [[ -n "$variant" ]] && bin="$bin-$variant"
  ctx="$(new_ctx)"
  cp "$here/services/Dockerfile" "$here/base/healthcheck.sh" "$ctx/"
  cp "$target_dir/release/$bin" "$ctx/$bin"
  build_one "$name${variant:+:$variant}" "$ctx" "SERVICE_BIN=$bin" "HTTP_PORT=$port"
}

build_kit() {
  local ctx
  ctx="$(new_ctx)"
  cp "$here/kit/Dockerfile" "$ctx/"
  cp "$target_dir/release/saga-conformance" "$ctx/"
  build_one "saga-conformance:$kit_version" "$ctx"
}

cmd_list() {
  local name
  printf '%-34s %12s  %s\n' IMAGE SIZE CREATED
  for name in "$local_base" "${all_images[@]}" saga-{order,product,payment}-service:failpoints; do
    docker image inspect "$name" --format "{{.Size}} {{.Created}}" 2>/dev/null |
      awk -v n="$name" '{ printf "%-34s %9.0f MB  %s\n", n, $1 / 1e6, substr($2, 1, 19) }' || printf '%-34s %12s\n' "$name" "(absent)"
  done
}

cmd_build() {
  local want=("$@") name
  [[ ${#want[@]} -gt 0 ]] || want=("${all_images[@]}")
  cmd_ensure_engine
  cmd_base 0 1
  init_ctx_root
  for name in "${want[@]}"; do
    case "$name" in
      saga-kafka|saga-kafka:*) build_kafka ;;
      saga-postgres|saga-postgres:*) build_postgres ;;
      saga-apicurio-registry|saga-apicurio-registry:*) build_registry ;;
      saga-order-service|saga-product-service|saga-payment-service)
        ensure_binaries; build_service "$name" ;;
      saga-order-service:failpoints|saga-product-service:failpoints|saga-payment-service:failpoints)
        ensure_failpoint_binaries; build_service "${name%%:*}" failpoints ;;
      failpoints)
        ensure_failpoint_binaries
        for name in saga-order-service saga-product-service saga-payment-service; do build_service "$name" failpoints; done ;;
      saga-conformance|saga-conformance:*) ensure_binaries; build_kit ;;
      *) die "unknown image '$name' (known: ${all_images[*]}, failpoints)" ;;
    esac
  done
  # drop the superseded (now untagged) versions of our images; nothing else is touched
  if [[ ${#built[@]} -gt 0 ]]; then
    docker image prune -f --filter "label=saga.inputs" >/dev/null || true
  fi
  echo
  cmd_list
}

# ------------------------------------------------------------------------------------------------
cmd="${1:-}"; [[ $# -gt 0 ]] && shift
rebuild=0; cargo_build=0; rest=()
for a in "$@"; do
  case "$a" in
    --rebuild) rebuild=1 ;;
    --cargo-build) cargo_build=1 ;;
    -*) die "unknown option $a" ;;
    *) rest+=("$a") ;;
  esac
done
case "$cmd" in
  ensure-engine) cmd_ensure_engine ;;
  base) cmd_base "$rebuild" ;;
  build) cmd_build ${rest[@]+"${rest[@]}"} ;;
  list) cmd_list ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
