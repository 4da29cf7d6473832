#!/usr/bin/env python3
"""The dependencies Cargo.toml builds at opt-level 0 must be the kit's alone.

The kit is built unoptimised to save build time (Cargo.toml, [profile.release.package.*]); the
services under test and what they link stay at opt-level 3, or the bench's figures and the
reference's speed would change behind our backs. This reads every package Cargo.toml sets to
opt-level 0 and fails if one of the three services links it, with the kit built beside them
(features unified, as `./saga conformance` builds them), or if the kit no longer links it (a
stale entry). Run by .ci/run; needs only cargo and Python 3.11+. `--list` prints the packages
Cargo.toml sets to opt-level 0 (the kit included), for `./saga bench`.
"""
import subprocess
import sys
import tomllib

SERVICES = ("order-service", "product-service", "payment-service")
KIT = "saga-conformance"

with open("Cargo.toml", "rb") as f:
    profiles = tomllib.load(f)["profile"]["release"]["package"]
at_zero = sorted(name for name, p in profiles.items() if p.get("opt-level") == 0)
if sys.argv[1:] == ["--list"]:
    # The one reader of that list: `./saga bench` rebuilds these at opt-level 3.
    print("\n".join(at_zero))
    sys.exit(0)
unoptimised = set(at_zero) - {KIT}

# One `cargo tree` per backend build of the kit (with and without the containers feature): the
# services' trees, features unified with the kit's, one section per root, blank-line separated.
for features in ([], ["--no-default-features"]):
    roots = [arg for s in (*SERVICES, KIT) for arg in ("-p", s)]
    tree = subprocess.run(
        ["cargo", "tree", "-e", "normal", "--prefix", "none", *roots, *features],
        check=True, capture_output=True, text=True,
    ).stdout
    linked = {}
    for section in tree.strip().split("\n\n"):
        names = [line.split()[0] for line in section.splitlines() if line.strip()]
        linked[names[0]] = set(names)
    for service in SERVICES:
        wrong = sorted(unoptimised & linked[service])
        if wrong:
            sys.exit(f"{service} links {', '.join(wrong)}, which Cargo.toml builds at opt-level 0 "
                     f"for the kit: remove those [profile.release.package.*] entries (the services stay at 3)")
    stale = sorted(unoptimised - linked[KIT])
    if stale:
        sys.exit(f"Cargo.toml sets opt-level 0 for {', '.join(stale)}, which the kit no longer links "
                 f"({' '.join(features) or 'default features'}): remove those entries")
print(f"check-profiles: {len(unoptimised)} kit-only dependencies at opt-level 0, none linked by a service")
