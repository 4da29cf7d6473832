#!/usr/bin/env bash
# Build a local stand-in for `debian:bookworm-slim` without pulling from any image registry:
#
#   build-base.sh IMAGE_TAG [MIRROR]
#
# debootstrap --variant=minbase bookworm from a Debian package mirror, trimmed the way the official
# slim image is (no docs/man pages/locales, apt caches and lists emptied, the official image's apt
# settings), then `tar | docker import`. Every Dockerfile of the project takes `ARG BASE_IMAGE`
# (default debian:bookworm-slim); `docker/images.sh` passes this image only when the official one
# is absent, so users with a registry change nothing.
#
# MIRROR defaults to the Debian archive this machine's apt uses (/etc/apt/sources.list*), or
# $SAGA_DEBIAN_MIRROR. Needs root, debootstrap and a running Docker engine.
# Downloaded .debs are kept in ~/.cache/saga-conformance/debootstrap (reused by later runs).
set -euo pipefail

die() { echo "build-base.sh: ERROR: $*" >&2; exit 1; }
log() { echo "build-base.sh: $*" >&2; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: build-base.sh IMAGE_TAG [MIRROR]"
tag="$1"
suite=bookworm
cache_root="${SAGA_CACHE_DIR:-$HOME/.cache/saga-conformance}"

[[ "$(id -u)" == 0 ]] || die "must run as root (debootstrap creates device nodes and chowns files)"
command -v docker >/dev/null || die "docker CLI not found; run 'docker/images.sh ensure-engine' first"

# --- which mirror -------------------------------------------------------------------------------
# The first Debian archive URI (not -security, not third-party) serving $suite in /etc/apt.
apt_uris() {
  # prints "URI SUITE" pairs from one-line (.list) and deb822 (.sources) files
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    awk '$1=="deb" { i=2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i+1) }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk 'BEGIN{RS=""; FS="\n"}
         { uris=""; suites=""; types="";
           for (j=1;j<=NF;j++) {
             if ($j ~ /^Types:/)  { types=$j;  sub(/^Types:[ \t]*/,"",types) }
             if ($j ~ /^URIs:/)   { uris=$j;   sub(/^URIs:[ \t]*/,"",uris) }
             if ($j ~ /^Suites:/) { suites=$j; sub(/^Suites:[ \t]*/,"",suites) }
           }
           if (types !~ /(^| )deb( |$)/) next
           nu=split(uris,U," "); ns=split(suites,S," ");
           for (a=1;a<=nu;a++) for (b=1;b<=ns;b++) print U[a], S[b] }' "$f"
  done
}

mirror="${2:-${SAGA_DEBIAN_MIRROR:-}}"
security_mirror="${SAGA_DEBIAN_SECURITY_MIRROR:-}"
if [[ -z "$mirror" ]]; then
  mirror="$(apt_uris | awk -v s="$suite" '$2==s {print $1; exit}')"
  [[ -n "$mirror" ]] || die "no Debian '$suite' archive found in /etc/apt/sources.list*; pass MIRROR or set SAGA_DEBIAN_MIRROR"
fi
if [[ -z "$security_mirror" ]]; then
  security_mirror="$(apt_uris | awk -v s="$suite-security" '$2==s {print $1; exit}')"
  [[ -n "$security_mirror" ]] || security_mirror="${mirror%/}-security"
fi
mirror="${mirror%/}"; security_mirror="${security_mirror%/}"
log "mirror $mirror (security: $security_mirror)"

if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null || die "apt-get install debootstrap failed"
fi

# --- debootstrap --------------------------------------------------------------------------------
work="$(mktemp -d /var/tmp/saga-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
debcache="$cache_root/debootstrap"
mkdir -p "$debcache"

log "debootstrap --variant=minbase $suite (log: $work/debootstrap.log)"
if ! debootstrap --variant=minbase --cache-dir="$debcache" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  [[ -f "$rootfs/debootstrap/debootstrap.log" ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
  die "debootstrap failed"
fi

# --- slim it like debian:bookworm-slim --------------------------------------------------------------
# dpkg: never unpack docs, man/info pages, translations (copyright files stay), as the official
# slim variant does; apt: the official image's docker-* settings.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# as in debian:*-slim: keep images small
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes" <<'EOF'
Acquire::GzipIndexes "true";
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
Acquire::Languages "none";
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests" <<'EOF'
Apt::AutoRemove::SuggestsImportant "false";
EOF
# Sources as in the official image (deb822), pointing at the mirror used here.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# Remove what the excludes above would have kept out, plus caches, logs and host leftovers.
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{man,info,groff,linda,lintian}/* "$rootfs/usr/share/lintian/overrides"
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
find "$rootfs/var/log" -type f -delete
rm -rf "${rootfs:?}/debootstrap" "${rootfs:?}"/tmp/* "${rootfs:?}"/var/tmp/* "${rootfs:?}"/dev/*
: >"$rootfs/etc/resolv.conf"; : >"$rootfs/etc/hostname"; rm -f "$rootfs/etc/machine-id"

# --- import -------------------------------------------------------------------------------------
log "docker import -> $tag"
tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  --change "LABEL org.opencontainers.image.description=\"debootstrap --variant=minbase $suite, slimmed; local stand-in for debian:$suite-slim\" saga.base.mirror=\"$mirror\"" \
  - "$tag" >/dev/null
docker image inspect "$tag" --format "build-base.sh: $tag {{.Id}} {{.Size}} bytes" >&2
