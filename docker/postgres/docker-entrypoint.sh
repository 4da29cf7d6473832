#!/usr/bin/env bash
# Entrypoint of saga-postgres: a compatible subset of the official `postgres` image's
# docker-entrypoint.sh, for Debian's postgresql-15.
#
#   env  POSTGRES_USER (postgres)  POSTGRES_PASSWORD (none)  POSTGRES_DB ($POSTGRES_USER)
#        POSTGRES_HOST_AUTH_METHOD (trust here; the official image demands a password instead)
#        POSTGRES_INITDB_ARGS  POSTGRES_INITDB_WALDIR  PGDATA (/var/lib/postgresql/data)
#   first start (empty PGDATA): initdb (--no-sync), a socket-only temporary server (fsync=off),
#        /docker-entrypoint-initdb.d/ (*.sql and *.sql.gz through psql, *.sh executed or sourced),
#        stop, then the real server listening on 0.0.0.0:5432.
#   args starting with '-' are postgres options: `docker run saga-postgres:15 -c fsync=off`.
set -Eeuo pipefail

log() { echo "$(date -u '+%F %T.%3N UTC') [entrypoint] $*"; }

if [[ "${1:0:1}" == '-' ]]; then
  set -- postgres "$@"
fi

if [[ "$1" != postgres ]]; then
  exec "$@"
fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

# As root: fix ownership, then re-run this script as postgres (postgres refuses to run as root).
if [[ "$(id -u)" == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chmod 00700 "$PGDATA" || :
  chmod 03775 /var/run/postgresql || :
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' + 2>/dev/null || :
  chown postgres:postgres /var/run/postgresql || :
  if [[ -n "${POSTGRES_INITDB_WALDIR:-}" ]]; then
    mkdir -p "$POSTGRES_INITDB_WALDIR"
    find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres:postgres '{}' +
  fi
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=trust}"
export POSTGRES_USER POSTGRES_DB

# psql for the init scripts: the temporary server listens on the unix socket only.
psql_init=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)

process_init_files() {
  local f
  for f in "$@"; do
    case "$f" in
      *.sh)
        if [[ -x "$f" ]]; then log "running $f"; "$f"
        else log "sourcing $f"; # shellcheck disable=SC1090
          . "$f"; fi ;;
      *.sql)    log "running $f"; "${psql_init[@]}" --dbname "$POSTGRES_DB" -f "$f"; echo ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql_init[@]}" --dbname "$POSTGRES_DB"; echo ;;
      *)        log "ignoring $f" ;;
    esac
  done
}

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  log "initdb in $PGDATA (user $POSTGRES_USER, host auth $POSTGRES_HOST_AUTH_METHOD)"
  initdb_args=(--username="$POSTGRES_USER")
  pwfile=""
  if [[ -n "${POSTGRES_PASSWORD:-}" ]]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb_args+=(--pwfile="$pwfile")
  fi
  if [[ -n "${POSTGRES_INITDB_WALDIR:-}" ]]; then
    initdb_args+=(--waldir="$POSTGRES_INITDB_WALDIR")
  fi
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a word list, as in the official image
  # --no-sync and an fsync=off init server: a fresh container's data needs no crash safety before
  # the real server starts (saves seconds per container; the official image syncs).
  initdb --no-sync "${initdb_args[@]}" ${POSTGRES_INITDB_ARGS:-} >/dev/null
  [[ -z "$pwfile" ]] || rm -f "$pwfile"

  {
    echo
    echo "# saga-postgres: connections from the containers' network"
    echo "host all all all $POSTGRES_HOST_AUTH_METHOD"
  } >>"$PGDATA/pg_hba.conf"
  {
    echo
    echo "# saga-postgres"
    echo "listen_addresses = '*'"
    echo "unix_socket_directories = '/var/run/postgresql'"
  } >>"$PGDATA/postgresql.conf"

  # Temporary server: socket only, so nothing outside sees it before init is complete.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432 -c fsync=off -c full_page_writes=off" -w start

  if [[ "$POSTGRES_DB" != postgres ]]; then
    "${psql_init[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  shopt -s nullglob
  process_init_files /docker-entrypoint-initdb.d/*
  shopt -u nullglob

  pg_ctl -D "$PGDATA" -m fast -w stop
  echo
  log "PostgreSQL init process complete; ready for start up."
  echo
else
  log "PostgreSQL Database directory appears to contain a database; skipping initialization"
fi

exec "$@"
