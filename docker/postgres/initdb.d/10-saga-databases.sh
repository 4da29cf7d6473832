#!/usr/bin/env bash
# Creates the reference stack's databases at first start (one per service + the schema registry).
# Runs from /docker-entrypoint-initdb.d in saga-postgres, and works unchanged when mounted into
# the official postgres image. SAGA_DATABASES (space-separated) overrides the list.
set -euo pipefail

dbs="${SAGA_DATABASES:-order_db product_db payment_db registry_db}"
owner="${POSTGRES_USER:-postgres}"
for name in $dbs "$owner"; do
  [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { echo "10-saga-databases.sh: '$name' is not a plain SQL identifier" >&2; exit 1; }
done
{
  for db in $dbs; do
    printf "SELECT format('CREATE DATABASE %%I OWNER %%I', '%s', '%s') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '%s') \\\\gexec\n" "$db" "$owner" "$db"
  done
} | psql -v ON_ERROR_STOP=1 --username "$owner" --no-password --no-psqlrc --dbname postgres --quiet
echo "10-saga-databases.sh: databases ready: $dbs"
