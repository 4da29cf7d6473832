#!/usr/bin/env bash
# Resolve a Java part of the reference stack from Maven Central into DEST_DIR (a cache outside
# the clone):
#
#   fetch-maven.sh kafka DEST_DIR      the Kafka broker's runtime classpath and its command-line
#                                      tools (docker/kafka/pom.xml: copy-dependencies, ~45 MB)
#   fetch-maven.sh apicurio DEST_DIR   Apicurio Registry's Quarkus distribution, unpacked
#                                      (docker/apicurio/pom.xml: unpack-dependencies, ~160 MB)
#
# Idempotent: after a complete copy a marker file DEST_DIR/.fetch-complete is written holding the
# sha256 of pom.xml. If the marker is present and matches the current pom, nothing is done. If the
# pom changed (or an earlier copy was interrupted), the jars are fetched again into a fresh
# directory which then replaces DEST_DIR, so old and new jar versions never mix.
# Concurrent runs for the same DEST_DIR are serialised with flock on DEST_DIR.lock.
#
# Needs: java (17+) and mvn on PATH, and Maven Central reachable (or the artifacts already in ~/.m2).
set -euo pipefail

die() { echo "fetch-maven.sh: ERROR: $*" >&2; exit 1; }

usage="usage: fetch-maven.sh kafka|apicurio DEST_DIR  (e.g. kafka ~/.cache/saga-conformance/kafka-libs)"
[[ $# -eq 2 && -n "$2" ]] || die "$usage"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# What to resolve: the pom, the Maven goal and its flags, and the files that prove a usable copy.
case "$1" in
  kafka)
    pom="$here/kafka/pom.xml"
    goal=(dependency:copy-dependencies -DincludeScope=runtime)
    # The broker jar and the SLF4J binding (without it the broker logs nothing, so no readiness
    # line), and the tools jar behind /opt/kafka/bin/kafka-*.sh.
    expect=("kafka_2.13-*.jar" "kafka-clients-*.jar" "kafka-tools-*.jar" "log4j-core-*.jar" "log4j-slf4j-impl-*.jar" "slf4j-api-*.jar")
    ;;
  apicurio)
    pom="$here/apicurio/pom.xml"
    # Markers (which artifacts were unpacked) go to a temp dir, not docker/apicurio/target: a
    # marker left behind would make the next run skip the unpack into a fresh staging dir.
    goal=(dependency:unpack-dependencies -DexcludeTransitive=true -DmarkersDirectory="$(mktemp -d)")
    expect=("quarkus-run.jar" "app/apicurio-registry-app-*.jar" "lib/main/*.jar")
    ;;
  *) die "$usage" ;;
esac
[[ -f "$pom" ]] || die "pom not found at $pom"

dest="$2"
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

staging="$(mktemp -d "$parent/.$1.staging.XXXXXX")" || die "cannot create a staging directory in $parent"
log="$staging.mvn.log"
cleanup() { rm -rf "$staging" "$log"; }
trap cleanup EXIT

echo "fetch-maven.sh: resolving $1 from $pom into $dest (a download on the first run)" >&2
if ! mvn -B -q -Dstyle.color=never -f "$pom" "${goal[@]}" -DoutputDirectory="$staging" >"$log" 2>&1; then
  echo "----- last lines of the Maven output -----" >&2
  tail -n 40 "$log" | sed 's/\x1b\[[0-9;]*m//g' >&2 || true
  echo "------------------------------------------" >&2
  die "'mvn ${goal[0]}' failed for $pom. Check that Maven Central is reachable (mvn uses ~/.m2/settings.xml for mirrors/proxies) and that the versions in pom.xml exist; $dest was left unchanged."
fi

# Sanity checks: the files the stack starts from must be there.
shopt -s nullglob
for want in "${expect[@]}"; do
  matches=( "$staging"/$want )
  (( ${#matches[@]} > 0 )) || die "Maven succeeded but $want is missing from what it copied; check $pom"
done
rm -rf "$staging/PaxHeaders.X"  # a tar artifact of the Apicurio tarball, not part of the distribution
jar_count=$(find "$staging" -name '*.jar' | wc -l)

{
  echo "$expected_marker"
  echo "jars=$jar_count"
  echo "fetched-at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$staging/$marker_name"

# Swap the complete staging directory into place.
if [[ -e "$dest" ]]; then
  old="$(mktemp -d "$parent/.$1.old.XXXXXX")"
  rmdir "$old"
  mv "$dest" "$old" || die "cannot move the old $dest out of the way"
  mv "$staging" "$dest" || { mv "$old" "$dest"; die "cannot move the fetched jars into $dest"; }
  rm -rf "$old"
else
  mv "$staging" "$dest" || die "cannot move the fetched jars into $dest"
fi
chmod 755 "$dest"

echo "fetch-maven.sh: $jar_count jars in $dest" >&2
