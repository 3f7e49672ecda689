#!/usr/bin/env bash
# The image of `make image` (scripts/image/egressd.sh) in a real containerd:
#  - built twice from the same inputs: the same digest (reproducible);
#  - imported into a private containerd started here (own root, state,
#    socket and runc root under a temp dir; overlayfs snapshotter) under
#    the name the DaemonSet uses, localhost/egressd:VERSION;
#  - every program starts inside it (`ctr run --rm --read-only`): egressd,
#    egress-controller, egressctl, iptables/ip6tables (+ -save, -restore,
#    nf_tables backend), ipset, ip, sh, egressd-pause; the versions are
#    checked;
#  - egressd --check-config on deploy/base/egressd.toml, read-only root;
#  - egressd enforcing as the DaemonSet runs it: read-only root, exactly the
#    capabilities NET_ADMIN, NET_RAW and NET_BIND_SERVICE, in a network
#    namespace of its own: the chain installed by the image's iptables,
#    /readyz 200 with every check, a denied name NXDOMAIN, `egressctl rules`
#    through `ctr tasks exec` (what `kubectl exec` does), SIGTERM exits.
# Also: the Containerfile's package list (the same egressd.packages, plus
# needed-packages.sh) is within the image's. Root; skips (77) when containerd, runc or ctr are missing
# (scripts/install-deps.sh test installs them). Cleans up after failures too.
set -uo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}"
build="$(cd "$bin/.." && pwd)"
for tool in containerd runc ctr containerd-shim-runc-v2; do
  command -v "$tool" > /dev/null || { echo "SKIP: $tool not installed (scripts/install-deps.sh test installs it)"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (containerd, network namespaces)"; exit 77; }
for tool in curl kdig python3; do
  command -v "$tool" > /dev/null || { echo "FAIL: $tool not installed"; exit 1; }
done

id="$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
work="$(mktemp -d "/tmp/egressd-image-test.$id.XXXXXX")"
ns="egressd-image-$id"
netns="egimg-$id"
address="$work/containerd.sock"
containerd_pid=""
failures=0
checks=0
ok() { checks=$((checks + 1)); echo "ok: $1"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL: $1"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
ctr_() { ctr --address "$address" --namespace "$ns" "$@"; }

cleanup() {
  if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2> /dev/null; then
    for task in $(ctr_ tasks ls -q 2> /dev/null); do ctr_ tasks kill -s SIGKILL "$task" > /dev/null 2>&1; done
    sleep 0.5
    for task in $(ctr_ tasks ls -q 2> /dev/null); do ctr_ tasks delete -f "$task" > /dev/null 2>&1; done
    for container in $(ctr_ containers ls -q 2> /dev/null); do ctr_ containers rm "$container" > /dev/null 2>&1; done
    kill -TERM "$containerd_pid" 2> /dev/null
    for _ in $(seq 50); do kill -0 "$containerd_pid" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$containerd_pid" 2> /dev/null
    wait "$containerd_pid" 2> /dev/null
  fi
  # Shims of ours that outlived containerd (they run on after it by design).
  for pid in $(pgrep -f "containerd-shim-runc-v2 -namespace $ns " 2> /dev/null); do kill -KILL "$pid" 2> /dev/null; done
  # Everything mounted under the work dir (overlay rootfs, shm), deepest first.
  awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2> /dev/null; done
  ip netns del "$netns" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP

# ---- the image, twice ---------------------------------------------------------------
version="$(sed -n 's/^project(egressd VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")"
image="localhost/egressd:$version"
export SOURCE_DATE_EPOCH=1700000000  # fixed, so the two builds agree whatever the commit
for n in 1 2; do
  start=$(date +%s.%N)
  if ! IMAGE_OUT="$work/image$n.tar" "$src/scripts/image/egressd.sh" "$build" > "$work/build$n.out" 2> "$work/build$n.log"; then
    tail -20 "$work/build$n.log"
    echo "FAIL: scripts/image/egressd.sh failed"
    exit 1
  fi
  echo "build $n: $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)") s, $(du -h "$work/image$n.tar" | cut -f1)"
done
tail -4 "$work/build1.log"
digest="$(cat "$work/image1.tar.digest")"
check "the build prints the manifest digest it records ($digest)" [ "$(cat "$work/build1.out")" = "$digest" ]
check "two builds from the same inputs give the same digest" [ "$digest" = "$(cat "$work/image2.tar.digest")" ]
check "and byte-identical archives" cmp -s "$work/image1.tar" "$work/image2.tar"
size=$(stat -c %s "$work/image1.tar")
check "the archive is under 40 MiB ($((size / 1048576)) MiB)" [ "$size" -lt $((40 * 1048576)) ]
check "every package is listed with its version and sha256" \
  python3 -c "import sys; rows=[l.split() for l in open(sys.argv[1])]; sys.exit(0 if len(rows) > 10 and all(len(r) == 3 and len(r[2]) == 64 for r in rows) and {'iptables','ipset','iproute2','dash','libc6','publicsuffix'} <= {r[0] for r in rows} else 1)" "$work/image1.tar.packages"

# The Containerfile installs egressd.packages and the packages of the libraries
# the binaries link (needed-packages.sh): make image must hold all of them.
containerfile="$( (sed 's/#.*//' "$src/scripts/image/egressd.packages"; \
  "$src/scripts/image/needed-packages.sh" "$bin/egressd" "$bin/egress-controller" "$bin/egressctl") | awk NF | sort -u)"
extra="$(comm -23 <(echo "$containerfile") <(awk '{print $1}' "$work/image1.tar.packages" | sort -u) | tr '\n' ' ')"
check "the Containerfile's packages are all in the image${extra:+ (missing: $extra)}" test -z "$extra" -a -n "$containerfile"

# skopeo (the README's way to a registry) reads the archive as it is.
if command -v skopeo > /dev/null; then
  inspected="$(skopeo inspect --format '{{.Digest}}' "oci-archive:$work/image1.tar" 2>&1)"
  check "skopeo inspect oci-archive: sees the same digest ($inspected)" [ "$inspected" = "$digest" ]
else
  fail "skopeo not installed (scripts/install-deps.sh test installs it)"
fi

# ---- a private containerd -----------------------------------------------------------------
mkdir -p "$work/root" "$work/state" "$work/fifo" "$work/runc"
cat > "$work/config.toml" << EOF
version = 2
root = "$work/root"
state = "$work/state"
# ctr only: no CRI (and so no CNI); the cluster test runs the CRI plugin.
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$address"
[ttrpc]
  address = "$work/containerd-ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.snapshotter.v1.overlayfs"]
  root_path = "$work/root/overlayfs"
EOF
containerd --config "$work/config.toml" > "$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do ctr --address "$address" version > /dev/null 2>&1 && break; sleep 0.1; done
ctr --address "$address" version > /dev/null 2>&1 || { tail -20 "$work/containerd.log"; echo "FAIL: containerd did not start"; exit 1; }
ok "a private containerd answers on $address"

if ctr_ images import "$work/image1.tar" > "$work/import.log" 2>&1; then ok "ctr images import"; else fail "ctr images import: $(cat "$work/import.log")"; fi
listed="$(ctr_ images ls | awk -v i="$image" '$1 == i {print $3}')"
check "imported as $image with the recorded digest" [ "$listed" = "$digest" ]

# run [CTR RUN OPTIONS] IMAGE ID CMD...: a fresh container, read-only root.
run() {
  timeout 120 ctr --address "$address" --namespace "$ns" run --rm --read-only --fifo-dir "$work/fifo" --runc-root "$work/runc" "$@"
}
expect_output() {  # DESCRIPTION REGEX CMD...
  local description="$1" regex="$2"; shift 2
  local out
  out="$(run "$@" 2>&1)"
  if [[ "$out" =~ $regex ]]; then ok "$description: $(head -1 <<< "$out")"; else fail "$description: got '$out'"; fi
}
n=0
cid() { n=$((n + 1)); echo "c$id-$n"; }
expect_output "egressd starts" "^egressd $version$" "$image" "$(cid)" egressd --version
expect_output "egress-controller starts" "^egress-controller $version$" "$image" "$(cid)" egress-controller --version
expect_output "egressctl starts" "^egressctl $version$" "$image" "$(cid)" egressctl --version
for tool in iptables ip6tables iptables-save iptables-restore ip6tables-save ip6tables-restore; do
  expect_output "$tool on nf_tables" "^$tool v1\.[0-9.]+ \(nf_tables\)" "$image" "$(cid)" "$tool" --version
done
expect_output "ipset starts" "ipset v[0-9.]+" "$image" "$(cid)" ipset --version
expect_output "ip (iproute2) starts" "^ip utility, iproute2-" "$image" "$(cid)" ip -V
expect_output "/bin/sh runs the init containers' scripts" "^sh-ok$" "$image" "$(cid)" /bin/sh -c 'set -e; echo sh-ok'
expect_output "egressd-pause starts (deploy/uninstall's idle container)" "^egressd-pause 1$" "$image" "$(cid)" egressd-pause -v
expect_output "no legacy iptables" "executable file not found" "$image" "$(cid)" iptables-legacy --version
expect_output "the root filesystem is read-only" "Read-only file system" "$image" "$(cid)" /bin/sh -c 'echo x > /probe'

# ---- egressd --check-config on what the deploy ships ------------------------------------------
out="$(run --mount "type=bind,src=$src/deploy/base/egressd.toml,dst=/etc/egressd/egressd.toml,options=rbind:ro" \
  --mount "type=bind,src=/etc/resolv.conf,dst=/etc/egressd/node-resolv.conf,options=rbind:ro" \
  "$image" "$(cid)" egressd --check-config --config /etc/egressd/egressd.toml 2>&1)"
rc=$?
check "egressd --check-config accepts deploy/base/egressd.toml inside the image (rc=$rc: $(head -1 <<< "$out"))" [ "$rc" = 0 ]

# ---- egressd enforcing as the DaemonSet runs it ------------------------------------------------------
ip netns add "$netns" && ip -n "$netns" link set lo up || { echo "FAIL: ip netns add"; exit 1; }
mkdir -p "$work/system.d"
cat > "$work/egressd.toml" << 'EOF'
[rules]
dirs = ["/etc/egressd/system.d", "/var/lib/egressd/rules.d"]
system_dirs = ["/etc/egressd/system.d"]
[dns]
listen = ["127.0.0.1:53"]
upstreams = ["127.0.0.1:5353"]
[nfqueue]
enabled = true
queues = [0]
install_rules = true
protected_cidrs = ["10.0.0.0/8"]
[control]
socket = "/run/egressd/control.sock"
[metrics]
listen = "127.0.0.1:9153"
EOF
cat > "$work/system.d/app.yaml" << 'EOF'
apiVersion: zalando.org/v1
kind: EgressRuleSet
metadata: {name: app, namespace: team}
spec: {targets: ["api.example.test:443"]}
EOF
mkdir -p "$work/rules.d"
# ctr's default capabilities less all but NET_RAW and NET_BIND_SERVICE, plus
# NET_ADMIN: the DaemonSet's `drop: [ALL]`, `add: [NET_ADMIN, NET_RAW, NET_BIND_SERVICE]`.
caps=(--cap-add CAP_NET_ADMIN)
for c in CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD SETGID SETUID SETFCAP SETPCAP SYS_CHROOT KILL AUDIT_WRITE; do
  caps+=(--cap-drop "CAP_$c")
done
daemon="d$id"
ctr_ run -d --read-only --fifo-dir "$work/fifo" --runc-root "$work/runc" \
  --with-ns "network:/run/netns/$netns" "${caps[@]}" \
  --mount "type=bind,src=$work/egressd.toml,dst=/etc/egressd/egressd.toml,options=rbind:ro" \
  --mount "type=bind,src=$work/system.d,dst=/etc/egressd/system.d,options=rbind:ro" \
  --mount "type=bind,src=$work/rules.d,dst=/var/lib/egressd/rules.d,options=rbind:ro" \
  --mount "type=tmpfs,src=tmpfs,dst=/run/egressd,options=size=1m" \
  --log-uri "file://$work/egressd.log" \
  "$image" "$daemon" egressd --config /etc/egressd/egressd.toml > "$work/run.log" 2>&1 \
  || { cat "$work/run.log"; fail "ctr run -d egressd"; }
in_ns() { ip netns exec "$netns" "$@"; }
for _ in $(seq 100); do [ "$(in_ns curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:9153/readyz)" = 200 ] && break; sleep 0.1; done
readyz="$(in_ns curl -s --max-time 5 http://127.0.0.1:9153/readyz | tr '\n' '|')"
check "egressd in the image is ready: rules, DNS, enforcement ($readyz)" \
  [ "$readyz" = "[+]rules ok|[+]dns ok|[+]enforcement ok|readyz check passed|" ]
check "/healthz is 200" [ "$(in_ns curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:9153/healthz)" = 200 ]
pid="$(ctr_ tasks ls | awk -v t="$daemon" '$1 == t {print $2}')"
capeff="$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status" 2> /dev/null)"
# NET_BIND_SERVICE (10), NET_ADMIN (12), NET_RAW (13).
check "it runs with exactly NET_ADMIN, NET_RAW, NET_BIND_SERVICE (CapEff $capeff)" [ "$capeff" = 0000000000003400 ]
check "no new privileges" grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$pid/status"
check "the image's iptables-restore installed the EGRESSD chain (nf_tables)" \
  bash -c "ip netns exec '$netns' iptables-save | grep -q -- '-A FORWARD -m comment --comment egressd -j EGRESSD'"
answer="$(in_ns kdig +timeout=2 +retry=0 @127.0.0.1 denied.example.org A 2>&1)"
check "a name no rule allows is NXDOMAIN" grep -q 'status: NXDOMAIN' <<< "$answer"
rules="$(ctr_ tasks exec --fifo-dir "$work/fifo" --exec-id "e$id" "$daemon" egressctl rules 2>&1)"
check "egressctl rules through the control socket (tasks exec, as kubectl exec)" grep -q "team/app" <<< "$rules"
ctr_ tasks kill -s SIGTERM "$daemon" > /dev/null 2>&1
# Generous bounds: under a full parallel `make test` the stop and the shim's
# copy of the last log lines into the log file have taken over 5 s.
for _ in $(seq 300); do ctr_ tasks ls | grep -q "^$daemon .*STOPPED" && break; sleep 0.1; done
for _ in $(seq 50); do grep -q 'event=egressd.stopped' "$work/egressd.log" && break; sleep 0.1; done
check "SIGTERM stops it" grep -q 'event=egressd.stopped' "$work/egressd.log"
check "and the chain stays (fail closed across restarts)" \
  bash -c "ip netns exec '$netns' iptables-save | grep -q ':EGRESSD'"
if [ "$failures" -gt 0 ]; then
  echo "--- egressd log"; tail -20 "$work/egressd.log"
  echo "--- containerd log"; tail -20 "$work/containerd.log"
fi

echo "$((checks - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
