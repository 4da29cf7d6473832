#!/usr/bin/env bash
# Resolve the Kafka broker's runtime classpath (see pom.xml beside this script) into DEST_DIR.
#
#   fetch-jars.sh DEST_DIR
#
# Idempotent: after a complete copy a marker file DEST_DIR/.fetch-complete is written holding the
# sha256 of pom.xml. If the marker is present and matches the current pom, nothing is done. If the
# pom changed (or an earlier copy was interrupted), the jars are fetched again into a fresh
# directory which then replaces DEST_DIR, so old and new jar versions never mix.
# Concurrent runs for the same DEST_DIR are serialised with flock on DEST_DIR.lock.
#
# Needs: java (17+) and mvn on PATH, and Maven Central reachable (or the jars already in ~/.m2).
set -euo pipefail

die() { echo "fetch-jars.sh: ERROR: $*" >&2; exit 1; }

[[ $# -eq 1 && -n "$1" ]] || die "usage: fetch-jars.sh DEST_DIR  (e.g. ~/.cache/saga-conformance/kafka-libs)"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/pom.xml"
[[ -f "$pom" ]] || die "pom not found at $pom (the script must stay next to docker/kafka/pom.xml)"

dest="$1"
marker_name=".fetch-complete"

command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found (install coreutils)"
pom_sha="$(sha256sum "$pom" | cut -d' ' -f1)"
expected_marker="pom-sha256=$pom_sha"

is_complete() {
  [[ -f "$dest/$marker_name" ]] && grep -qxF "$expected_marker" "$dest/$marker_name"
}

# Fast path: no lock, no tools needed.
if is_complete; then
  exit 0
fi

command -v mvn >/dev/null 2>&1 || die "mvn (Apache Maven) not found on PATH; install it, e.g. 'apt-get install -y maven'"
command -v java >/dev/null 2>&1 || die "java not found on PATH; Kafka 4.x needs Java 17+, e.g. 'apt-get install -y openjdk-17-jdk-headless'"

parent="$(dirname "$dest")"
mkdir -p "$parent" || die "cannot create parent directory $parent"

lock="$dest.lock"
exec 9>"$lock" || die "cannot open lock file $lock"
if command -v flock >/dev/null 2>&1; then
  flock 9 || die "cannot lock $lock"
fi

# Another run may have finished while we waited for the lock.
if is_complete; then
  exit 0
fi

staging="$(mktemp -d "$parent/.kafka-libs.staging.XXXXXX")" || die "cannot create a staging directory in $parent"
log="$staging.mvn.log"
cleanup() { rm -rf "$staging" "$log"; }
trap cleanup EXIT

echo "fetch-jars.sh: resolving Kafka classpath from $pom into $dest (this downloads ~40 MB on first run)" >&2
if ! mvn -B -q -Dstyle.color=never -f "$pom" \
      dependency:copy-dependencies \
      -DincludeScope=runtime \
      -DoutputDirectory="$staging" >"$log" 2>&1; then
  echo "----- last lines of the Maven output -----" >&2
  tail -n 40 "$log" | sed 's/\x1b\[[0-9;]*m//g' >&2 || true
  echo "------------------------------------------" >&2
  die "'mvn dependency:copy-dependencies' failed for $pom. Check that Maven Central is reachable (mvn uses ~/.m2/settings.xml for mirrors/proxies) and that the versions in pom.xml exist; $dest was left unchanged."
fi

# Sanity checks: the broker jar and the SLF4J binding must be there, or the broker won't run/log.
shopt -s nullglob
for want in "kafka_2.13-*.jar" "kafka-clients-*.jar" "log4j-core-*.jar" "log4j-slf4j-impl-*.jar" "slf4j-api-*.jar"; do
  matches=( "$staging"/$want )
  (( ${#matches[@]} > 0 )) || die "Maven succeeded but $want is missing from the copied classpath; check pom.xml"
done
jar_count=$(find "$staging" -maxdepth 1 -name '*.jar' | wc -l)

{
  echo "$expected_marker"
  echo "jars=$jar_count"
  echo "fetched-at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$staging/$marker_name"

# Swap the complete staging directory into place.
if [[ -e "$dest" ]]; then
  old="$(mktemp -d "$parent/.kafka-libs.old.XXXXXX")"
  rmdir "$old"
  mv "$dest" "$old" || die "cannot move the old $dest out of the way"
  mv "$staging" "$dest" || { mv "$old" "$dest"; die "cannot move the fetched jars into $dest"; }
  rm -rf "$old"
else
  mv "$staging" "$dest" || die "cannot move the fetched jars into $dest"
fi
chmod 755 "$dest"

echo "fetch-jars.sh: $jar_count jars in $dest" >&2
