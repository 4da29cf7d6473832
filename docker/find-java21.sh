#!/usr/bin/env bash
# Prints the newest Java home of at least 21 (its release file's JAVA_VERSION) among
# SAGA_JAVA_HOME, JAVA_HOME and /usr/lib/jvm/*, or fails saying how to get one. Apicurio Registry 3
# is built for Java 21; the Kafka broker and Maven run on Debian's 17. Machines of this project's
# kind ship a Temurin JDK beside Debian's; Debian bookworm itself packages only 17.
# The processes backend searches the same places (steps/src/backend/processes/registry.rs).
set -euo pipefail

best="" best_major=0
for home in "${SAGA_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/*; do
  [[ -n "$home" && -x "$home/bin/java" && -f "$home/release" ]] || continue
  major="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$home/release")"
  [[ "$major" == 1 ]] && major=8
  if [[ -n "$major" ]] && (( major >= 21 && major > best_major )); then best="$home"; best_major="$major"; fi
done
if [[ -z "$best" ]]; then
  echo "find-java21.sh: ERROR: no Java 21 or newer found (looked at SAGA_JAVA_HOME, JAVA_HOME, /usr/lib/jvm/*): Apicurio Registry, the stack's schema registry, needs one. Install a JDK or JRE 21+ (e.g. Eclipse Temurin, or openjdk-21-jre-headless on Debian 13) and set SAGA_JAVA_HOME to its directory" >&2
  exit 1
fi
echo "$best"
