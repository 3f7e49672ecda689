#!/usr/bin/env bash
# Builds (or reuses) the pinned Kubernetes, etcd and CoreDNS binaries for the
# k8s tests and prints the directory that holds them: kube-apiserver,
# kubectl, etcd, etcdctl (the control plane of apiserver.sh), and
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy and coredns
# (the single-node cluster of cluster.sh).
#
#   tests/k8s/build.sh            # build what is missing, print the bin dir
#   tests/k8s/build.sh --force    # rebuild even if present
#
# Cache: $EGRESSD_K8S_CACHE/<kube>-etcd<etcd>/bin, EGRESSD_K8S_CACHE defaults
# to $HOME/.cache/egressd-k8s (outside the work tree, so a fresh clone on the
# same machine - as CI is - reuses the binaries). Set
# EGRESSD_K8S_CACHE="$PWD/tests/k8s/.cache" to keep them in the tree instead
# (that folder is git-ignored). The folder's `stamp` records, per binary, the
# version it was built from; coredns is rebuilt when COREDNS_VERSION or its
# plugin list (coredns/main.go) changes.
#
# Idempotent: exits at once when every binary of the pinned versions is
# there, and otherwise builds only the missing ones; a concurrent second run
# waits on a lock instead of building twice.
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
# CoreDNS is our coredns/main.go (only the plugins the cluster uses) built
# against COREDNS_VERSION: its stamp names both, so a changed plugin list
# rebuilds it.
coredns_main="$(sha256sum "$here/coredns/main.go" | cut -c1-16)"
coredns_stamp="$COREDNS_VERSION-main.$coredns_main"
dir="$cache_root/$key"
bin="$dir/bin"
# binary  wrapper-module  package  version (recorded in the stamp)
targets="
etcd etcd go.etcd.io/etcd/server/v3 $ETCD_VERSION
etcdctl etcd go.etcd.io/etcd/etcdctl/v3 $ETCD_VERSION
kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver $KUBE_VERSION
kubectl kube k8s.io/kubernetes/cmd/kubectl $KUBE_VERSION
kube-controller-manager kube k8s.io/kubernetes/cmd/kube-controller-manager $KUBE_VERSION
kube-scheduler kube k8s.io/kubernetes/cmd/kube-scheduler $KUBE_VERSION
kubelet kube k8s.io/kubernetes/cmd/kubelet $KUBE_VERSION
kube-proxy kube k8s.io/kubernetes/cmd/kube-proxy $KUBE_VERSION
coredns coredns . $coredns_stamp
"

# Is binary $1 of version $2 in the cache? The kube and etcd binaries are
# pinned by the folder name already; a stamp written before per-binary lines
# existed (`key=` only) still vouches for the first four.
have() {
  [[ -x "$bin/$1" && -f "$dir/stamp" ]] || return 1
  grep -qx "$1=$2" "$dir/stamp" && return 0
  case "$1" in
    etcd | etcdctl | kube-apiserver | kubectl) grep -qx "key=$key" "$dir/stamp" ;;
    *) return 1 ;;
  esac
}

missing() { # prints "binary module package version" lines still to build
  local b m p v
  while read -r b m p v; do
    [[ -n "$b" ]] || continue
    if ((force == 1)) || ! have "$b" "$v"; then echo "$b $m $p $v"; fi
  done <<< "$targets"
}

if [[ -z "$(missing)" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
todo="$(missing)"
if [[ -z "$todo" ]]; then # built by the run we waited for
  echo "$bin"
  exit 0
fi
force=0 # what --force asked for is now in $todo

# A version bump in versions.env (or a new coredns/main.go) regenerates the
# wrapper go.mod files.
if ! grep -q "k8s.io/kubernetes $KUBE_VERSION\b" "$here/kube/go.mod" ||
  ! grep -q "k8s.io/kubernetes/cmd/kubelet$" "$here/kube/go.mod" ||
  ! grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION\b" "$here/etcd/go.mod"; then
  log "kube/etcd go.mod files do not match versions.env; running gen-gomod.sh kube etcd"
  "$here/gen-gomod.sh" kube etcd >&2
fi
if ! grep -q "github.com/coredns/coredns $COREDNS_VERSION\b" "$here/coredns/go.mod" ||
  ! grep -qx "// main.go sha256 $coredns_main" "$here/coredns/go.mod"; then
  log "coredns/go.mod does not match versions.env or coredns/main.go; running gen-gomod.sh coredns"
  "$here/gen-gomod.sh" coredns >&2
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
log "building into $bin (go $("$GO" env GOVERSION), -p $gop; a first build takes long):"
log "  $(echo "$todo" | awk '{printf "%s ", $1}')"
build() { # binary module-dir package [extra ldflags]
  local t0
  t0=$(date +%s)
  log "  $1 <- $3"
  (cd "$here/$2" && CGO_ENABLED=0 "$GO" build "${flags[@]}" \
    -ldflags="-s -w${4:-}" -o "$tmp/$1" "$3") >&2 < /dev/null
  log "  $1 done in $(($(date +%s) - t0)) s"
}
built=()
while read -r b m p v; do
  ldf=""
  [[ "$m" == kube ]] && ldf="$kver_ldflags"
  build "$b" "$m" "$p" "$ldf"
  built+=("$b=$v")
done <<< "$todo"

# Each binary is moved into place as soon as all are built, with the stamp:
# the per-binary lines of the old stamp that were not rebuilt, then the new.
mkdir -p "$bin"
stamp_lines=""
if [[ -f "$dir/stamp" ]]; then
  stamp_lines="$(grep -E '^[a-z-]+=v' "$dir/stamp" || true)"
  # An old stamp with only `key=`: its first four binaries become lines.
  if grep -qx "key=$key" "$dir/stamp"; then
    for b in etcd etcdctl kube-apiserver kubectl; do
      [[ -x "$bin/$b" ]] || continue
      v="$KUBE_VERSION"
      [[ "$b" == etcd* ]] && v="$ETCD_VERSION"
      stamp_lines+=$'\n'"$b=$v"
    done
  fi
fi
for bv in "${built[@]}"; do
  b="${bv%%=*}"
  mv -f "$tmp/$b" "$bin/$b"
  stamp_lines="$(echo "$stamp_lines" | grep -v "^$b=" || true)"$'\n'"$bv"
done
elapsed=$(($(date +%s) - start))
{
  echo "go=$("$GO" env GOVERSION)"
  echo "flags=${flags[*]} -ldflags=-s -w CGO_ENABLED=0"
  echo "built=$(date -u +%FT%TZ)"
  echo "seconds=$elapsed"
  echo "$stamp_lines" | sed '/^$/d' | sort -u
} > "$dir/stamp.new"
mv -f "$dir/stamp.new" "$dir/stamp"
log "built ${#built[@]} binaries in ${elapsed} s"
echo "$bin"
