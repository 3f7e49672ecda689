#!/usr/bin/env bash
# Builds (or reuses) the pinned kube-apiserver, kubectl, etcd and etcdctl
# for the k8s tests and prints the directory that holds them.
#
#   tests/k8s/build.sh            # build if missing, print the bin dir
#   tests/k8s/build.sh --force    # rebuild even if present
#
# Cache: $EGRESSD_K8S_CACHE/<kube>-etcd<etcd>/bin, EGRESSD_K8S_CACHE defaults
# to $HOME/.cache/egressd-k8s (outside the work tree, so a fresh clone on the
# same machine - as CI is - reuses the binaries). Set
# EGRESSD_K8S_CACHE="$PWD/tests/k8s/.cache" to keep them in the tree instead
# (that folder is git-ignored).
#
# Idempotent: exits at once when all four binaries of the pinned versions are
# there; a concurrent second run waits on a lock instead of building twice.
# Go builds use -p ${EGRESSD_K8S_GO_P:-2}: the machine has 2 shared cores.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

log() { echo "k8s-build: $*" >&2; }

cache_root="${EGRESSD_K8S_CACHE:-${HOME:-/root}/.cache/egressd-k8s}"
key="${KUBE_VERSION}-etcd${ETCD_VERSION}"
dir="$cache_root/$key"
bin="$dir/bin"
bins=(kube-apiserver kubectl etcd etcdctl)

have_all() {
  local b
  for b in "${bins[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
  [[ -f "$dir/stamp" ]] && grep -qx "key=$key" "$dir/stamp"
}

if ((force == 0)) && have_all; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if ((force == 0)) && have_all; then # built by the run we waited for
  echo "$bin"
  exit 0
fi

# A version bump in versions.env regenerates the wrapper go.mod files.
if ! grep -q "k8s.io/kubernetes $KUBE_VERSION\b" "$here/kube/go.mod" ||
  ! grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION\b" "$here/etcd/go.mod"; then
  log "go.mod files do not match versions.env; running gen-gomod.sh"
  "$here/gen-gomod.sh" >&2
fi

kminor="${KUBE_VERSION#v1.}"
kminor="${kminor%%.*}"
# What upstream's hack/lib/version.sh stamps in, so `kubectl version` and
# /version report the real release instead of v0.0.0-master.
kver_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kver_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1"
  kver_ldflags+=" -X $pkg.gitMinor=$kminor -X $pkg.gitTreeState=clean"
done
gop="${EGRESSD_K8S_GO_P:-2}"
flags=(-p "$gop" -trimpath -mod=readonly)
tmp="$(mktemp -d "$dir/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

start=$(date +%s)
log "building $key into $bin (go $("$GO" env GOVERSION), -p $gop; the first build takes long)"
build() { # module-dir output package [extra ldflags]
  local t0
  t0=$(date +%s)
  log "  $2 <- $3"
  (cd "$here/$1" && CGO_ENABLED=0 "$GO" build "${flags[@]}" \
    -ldflags="-s -w${4:-}" -o "$tmp/$2" "$3") >&2
  log "  $2 done in $(($(date +%s) - t0)) s"
}
build etcd etcd go.etcd.io/etcd/server/v3
build etcd etcdctl go.etcd.io/etcd/etcdctl/v3
build kube kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$kver_ldflags"
build kube kubectl k8s.io/kubernetes/cmd/kubectl "$kver_ldflags"

mkdir -p "$bin"
for b in "${bins[@]}"; do mv -f "$tmp/$b" "$bin/$b"; done
elapsed=$(($(date +%s) - start))
{
  echo "key=$key"
  echo "go=$("$GO" env GOVERSION)"
  echo "flags=${flags[*]} -ldflags=-s -w CGO_ENABLED=0"
  echo "built=$(date -u +%FT%TZ)"
  echo "seconds=$elapsed"
} > "$dir/stamp"
log "built $key in ${elapsed} s"
echo "$bin"
