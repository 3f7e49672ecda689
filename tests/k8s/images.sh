#!/usr/bin/env bash
# Container images of the test cluster (tests/k8s/cluster.sh), written as OCI
# archives by scripts/image/build.py (the builder of `make image`: Debian
# packages, no engine, no registry) for `ctr -n k8s.io images import`
# (docs/kubernetes-testing.md).
#
#   images.sh pause   OUT.tar           the sandbox image: scripts/image/pause.c,
#                                       compiled statically now
#   images.sh coredns OUT.tar COREDNS   CoreDNS from the binary build.sh made
#   images.sh client  OUT.tar           a test client: curl (and sleep, cat)
#                                       from Debian's packages
#   images.sh name    pause|coredns|client   the image's name
#
# Downloaded .deb files (and the CoreDNS image) are kept in
# $EGRESSD_IMAGE_CACHE (default: the build dir's image-cache, shared with
# `make image`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${EGRESSD_IMAGE_CACHE:-${EGRESSD_BIN:-$src/build/bin}/../image-cache}"

die() {
  echo "images.sh: $*" >&2
  exit 1
}

image_name() {
  case "$1" in
    pause) echo "localhost/egressd-test/pause:1" ;;
    coredns) echo "localhost/egressd-test/coredns:$COREDNS_VERSION" ;;
    client) echo "localhost/egressd-test/client:1" ;;
    *) die "unknown image '$1' (pause, coredns, client)" ;;
  esac
}

build() { # NAME OUT build.py-options...
  local name="$1" out="$2"
  shift 2
  mkdir -p "$cache"
  "$src/scripts/image/build.py" --tag "$(image_name "$name")" --out "$out" --cache "$cache" "$@" \
    > /dev/null 2> "$out.log" || {
    cat "$out.log" >&2
    die "building the $name image failed"
  }
}

build_pause() { # OUT
  local tmp
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: the folder of this call
  trap "rm -rf '$tmp'" RETURN
  "${CC:-cc}" -static -Os -Wall -Wextra -Werror -o "$tmp/pause" "$src/scripts/image/pause.c" ||
    die "cannot compile a static pause (libc6-dev provides libc.a)"
  build pause "$1" --add "$tmp/pause:/pause:755" --entrypoint '["/pause"]' --user 65535:65535
}

# Compressing the 80 MB binary takes most of a cluster's start-up, so the
# archive is kept in the cache, keyed by the binary's digest.
build_coredns() { # OUT COREDNS-BINARY
  [[ -x "$2" ]] || die "no coredns binary at $2 (tests/k8s/build.sh builds it)"
  local kept
  kept="$cache/egressd-test-coredns-$COREDNS_VERSION-$(sha256sum "$2" | cut -c1-16).tar"
  if [[ ! -f "$kept" ]]; then
    build coredns "$kept.tmp" --add "$2:/coredns:755" --entrypoint '["/coredns"]'
    mv -f "$kept.tmp" "$kept"
    rm -f "$kept.tmp".*
  fi
  cp "$kept" "$1"
}

# No CA bundle: ca-certificates builds /etc/ssl/certs in a maintainer script,
# which the builder does not run; tests give curl their CA with --cacert.
build_client() { # OUT
  build client "$1" --package curl --package coreutils --cmd '["sleep", "infinity"]'
}

case "${1:-}" in
  name) image_name "${2:-}" ;;
  pause) build_pause "${2:?usage: images.sh pause OUT.tar}" ;;
  coredns) build_coredns "${2:?usage: images.sh coredns OUT.tar COREDNS}" "${3:?usage: images.sh coredns OUT.tar COREDNS}" ;;
  client) build_client "${2:?usage: images.sh client OUT.tar}" ;;
  *) die "usage: images.sh pause|coredns|client OUT.tar ... | name IMAGE (see the header)" ;;
esac
