#!/usr/bin/env bash
# The gateway package of `make deb` (scripts/deb/build.sh, docs/gateway.md):
#  - built twice from the same binaries: the same bytes (reproducible);
#  - its control data: name, the project version, Depends naming the
#    package of every library the three programs link (dpkg-shlibdeps'
#    work, checked here against readelf + dpkg -S), publicsuffix, the two
#    conffiles, the file list, root ownership;
#  - lintian: no error tag (warnings and style tags are printed only);
#  - installed with apt into a fresh Debian 12 (bookworm) root made by
#    debootstrap, so apt resolves the dependencies from the mirror: then,
#    inside with chroot, `egressd --check-config` on the shipped
#    /etc/egressd/egressd.toml, `egress-controller --help`, `egressctl
#    --help`, ldd, and dpkg's view of the conffiles; the shipped config is
#    the central-gateway shape and agrees with the units' directories;
#  - then systemd installed in the root as well (for its own units), and
#    systemd-analyze verify on both of ours;
#  - the installed egressd started as its unit starts it (ExecStart, the
#    capability bounding set, no new privileges, read-only root, a fresh
#    /run, NOTIFY_SOCKET) in a network namespace: READY=1 and STATUS,
#    /readyz, DNS and the proxy on the host's address, SIGTERM.
# The minbase root is made once and kept as a tarball in
# ~/.cache/egressd-deb-test (EGRESSD_DEB_CACHE; 170 MB), with apt's
# downloaded packages beside it: the first run's debootstrap downloads the
# base system and takes about 3.5 minutes, later runs about 100 s. Root;
# skips (77) without debootstrap or when not root. Cleans up after failures
# too (the chroot's mounts live in a mount namespace of their own).
set -uo pipefail
bin="${EGRESSD_BIN:?}"
src="${EGRESSD_SOURCE_DIR:?}"
build="$(cd "$bin/.." && pwd)"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (debootstrap, chroot)"; exit 77; }
for tool in debootstrap dpkg-deb dpkg-shlibdeps systemd-analyze unshare chroot readelf; do
  command -v "$tool" > /dev/null || { echo "SKIP: $tool not installed (scripts/install-deps.sh test installs it)"; exit 77; }
done

id="$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
work="$(mktemp -d "/tmp/egressd-deb-test.$id.XXXXXX")"
cache="${EGRESSD_DEB_CACHE:-$HOME/.cache/egressd-deb-test}"
failures=0
checks=0
ok() { checks=$((checks + 1)); echo "ok: $1"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL: $1"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else fail "$d"; fi; }
netns=""
cleanup() {
  [ -n "$netns" ] && { for p in $(ip netns pids "$netns" 2> /dev/null); do kill -9 "$p"; done; ip netns del "$netns" 2> /dev/null; }
  jobs -p | xargs -r kill 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }

# ---- the package, twice ---------------------------------------------------------------
version="$(sed -n 's/^project(egressd VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")"
arch="$(dpkg --print-architecture)"
export SOURCE_DATE_EPOCH=1700000000 # fixed, so the two builds agree whatever the commit
for n in 1 2; do
  if ! DEB_OUT="$work/egressd$n.deb" "$src/scripts/deb/build.sh" "$build" > "$work/build$n.out" 2> "$work/build$n.log"; then
    cat "$work/build$n.log"
    echo "FAIL: scripts/deb/build.sh failed"
    exit 1
  fi
done
cat "$work/build1.log"
deb="$work/egressd1.deb"
check "build.sh prints the package it wrote" [ "$(cat "$work/build1.out")" = "$deb" ]
check "two builds give the same bytes ($(sha256sum < "$deb" | cut -c1-16))" cmp -s "$deb" "$work/egressd2.deb"

# ---- control data ----------------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
check "Package: egressd" [ "$(field Package)" = egressd ]
check "Version: $version (the CMake project version)" [ "$(field Version)" = "$version" ]
check "Architecture: $arch" [ "$(field Architecture)" = "$arch" ]
depends="$(field Depends)"
echo "Depends: $depends"
# Every library a program links, found on this machine and traced to its
# package, must be in Depends (with a minimum version from its symbols file).
needed_pkgs="$("$src/scripts/image/needed-packages.sh" "$bin/egressd" "$bin/egress-controller" "$bin/egressctl")"
check "the programs link libraries of at least 8 packages ($(echo $needed_pkgs))" [ "$(wc -l <<< "$needed_pkgs")" -ge 8 ]
dep_names="$(tr ',' '\n' <<< "$depends" | sed 's/^ *//; s/ .*//')"
for p in $needed_pkgs; do
  check "Depends names $p, whose library a program links" grep -qxF "$p" <<< "$dep_names"
done
check "Depends carries minimum versions from the libraries' symbols (libc6 (>= ...))" grep -Eq '(^|, )libc6 \(>= [0-9.]+\)' <<< "$depends"
check "Depends names publicsuffix (egressd's data file)" grep -Eq '(^|, )publicsuffix(,|$)' <<< "$depends"
extra="$(grep -vxF -f <(echo "$needed_pkgs"; echo publicsuffix) <<< "$dep_names")"
check "Depends names nothing else (${extra:-none})" [ -z "$extra" ]
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles > "$work/conffiles"
check "conffiles: egressd.toml and controller.env" \
  [ "$(cat "$work/conffiles")" = "$(printf '/etc/egressd/egressd.toml\n/etc/egressd/controller.env')" ]

dpkg-deb -c "$deb" > "$work/contents"
files="$(awk '{print $NF}' "$work/contents" | sed 's|^\./|/|' | grep -v '/$')"
echo "files:"; sed 's/^/  /' <<< "$files"
expected="/etc/egressd/controller.env
/etc/egressd/egressd.toml
/lib/systemd/system/egress-controller.service
/lib/systemd/system/egressd.service
/usr/bin/egressctl
/usr/sbin/egress-controller
/usr/sbin/egressd
/usr/share/doc/egressd/README.gateway.md
/usr/share/doc/egressd/changelog.gz
/usr/share/doc/egressd/copyright"
check "the file list is exactly the expected one" [ "$(sort <<< "$files")" = "$expected" ]
check "every entry is root/root" [ -z "$(awk '$2 != "root/root"' "$work/contents")" ]
check "every entry is stamped with SOURCE_DATE_EPOCH" \
  [ -z "$(awk -v d="$(date -u -d @$SOURCE_DATE_EPOCH '+%Y-%m-%d %H:%M')" '$4" "$5 != d' "$work/contents")" ]
check "/etc/egressd/system.d/ is shipped (empty)" grep -q ' \./etc/egressd/system\.d/$' "$work/contents"
check "the programs are stripped" [ -z "$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/sbin/egressd | readelf -S -W /dev/stdin 2> /dev/null | grep '\.debug_info')" ]

# ---- lintian -------------------------------------------------------------------------------
if command -v lintian > /dev/null; then
  start=$(date +%s.%N)
  lintian --tag-display-limit 0 "$deb" > "$work/lintian" 2>&1
  echo "lintian ($(elapsed "$start") s):"; sed 's/^/  /' "$work/lintian"
  check "lintian reports no error" [ -z "$(grep '^E:' "$work/lintian")" ]
else
  echo "lintian not installed: not linted (scripts/install-deps.sh test installs it)"
fi

# ---- a fresh Debian 12 root ----------------------------------------------------------------
# The mirror this machine's apt uses (deb822 or one-line sources).
mirror="$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/*.sources 2> /dev/null | head -1)"
[ -n "$mirror" ] || mirror="$(sed -n 's/^deb \(http[^ ]*\/debian\)\/* bookworm .*/\1/p' /etc/apt/sources.list 2> /dev/null | head -1)"
mirror="${mirror:-http://deb.debian.org/debian}"
mkdir -p "$cache/archives/partial"
tarball="$cache/bookworm-minbase-$arch.tar"
chroot_dir="$work/root"
if [ ! -s "$tarball" ]; then
  start=$(date +%s.%N)
  echo "debootstrap bookworm from $mirror (once; cached in $tarball)"
  if ! debootstrap --variant=minbase --arch="$arch" bookworm "$work/fresh" "$mirror" > "$work/debootstrap.log" 2>&1; then
    tail -20 "$work/debootstrap.log"
    echo "FAIL: debootstrap bookworm $mirror failed"
    exit 1
  fi
  rm -rf "$work/fresh/var/cache/apt/archives/"*.deb
  tar -C "$work/fresh" -cf "$tarball.$id" . && mv "$tarball.$id" "$tarball"
  rm -rf "$work/fresh"
  echo "debootstrap: $(elapsed "$start") s, $(du -h "$tarball" | cut -f1)"
fi
mkdir "$chroot_dir"
tar -C "$chroot_dir" -xf "$tarball"
# apt in the root uses this machine's Debian sources (security updates
# included: dpkg-shlibdeps took its minimum versions from the libraries
# installed here) and resolves the package's dependencies itself.
rm -f "$chroot_dir/etc/apt/sources.list"
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
  [ -f "$f" ] && grep -q 'debian' "$f" && cp "$f" "$chroot_dir/etc/apt/sources.list.d/"
done
cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
cp "$deb" "$chroot_dir/tmp/egressd.deb"

# In a mount namespace of its own: /proc and the package cache are
# mounted for the chroot and vanish with it.
in_root() {
  unshare --mount --propagation private -- sh -c '
    root=$1; cache=$2; shift 2
    mount -t proc proc "$root/proc" && mount --bind "$cache" "$root/var/cache/apt/archives" &&
      exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"' \
    in_root "$chroot_dir" "$cache/archives" "$@"
}
start=$(date +%s.%N)
if ! in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/egressd.deb' > "$work/apt.log" 2>&1; then
  tail -30 "$work/apt.log"
  fail "apt-get install /tmp/egressd.deb in a fresh bookworm root"
  echo "$failures of $checks checks failed"
  exit 1
fi
ok "apt-get install egressd.deb in a fresh bookworm root ($(elapsed "$start") s; with its dependencies)"
installed="$(in_root dpkg-query -W -f '${Package} ${Version} ${Status}\n' egressd)"
check "dpkg: egressd $version install ok installed" [ "$installed" = "egressd $version install ok installed" ]
pulled="$(grep -c '^Setting up' "$work/apt.log")"
echo "apt set up $pulled packages; $(grep '^Setting up' "$work/apt.log" | sed 's/Setting up \([^ :]*\).*/\1/' | tr '\n' ' ')"

# ---- inside the root -----------------------------------------------------------------------
in_root egressd --check-config --config /etc/egressd/egressd.toml > "$work/check.out" 2>&1
rc=$?
sed 's/^/  /' "$work/check.out"
check "egressd --check-config on the shipped /etc/egressd/egressd.toml exits 0 ($rc)" [ "$rc" = 0 ]
check "egressd --version says $version" [ "$(in_root egressd --version)" = "egressd $version" ]
in_root egress-controller --help > "$work/controller.help" 2>&1
rc=$?
check "egress-controller --help exits 0 and names --kubeconfig ($rc)" sh -c "[ $rc = 0 ] && grep -q -- --kubeconfig '$work/controller.help'"
in_root egressctl --help > "$work/egressctl.help" 2>&1
rc=$?
check "egressctl --help exits 0 ($rc)" [ "$rc" = 0 ]
missing="$(in_root sh -c 'ldd /usr/sbin/egressd /usr/sbin/egress-controller /usr/bin/egressctl' | grep 'not found')"
check "ldd in the root: no library missing${missing:+ ($missing)}" [ -z "$missing" ]
in_root dpkg-query -W -f '${Conffiles}\n' egressd > "$work/conffiles.installed"
check "dpkg registered both conffiles" sh -c "grep -q '/etc/egressd/egressd.toml [0-9a-f]' '$work/conffiles.installed' && grep -q '/etc/egressd/controller.env [0-9a-f]' '$work/conffiles.installed'"
# The shipped config is the central-gateway shape, and it agrees with the
# units: the controller writes the rules directory egressd reads and the
# pod map of all pods (--pod-map, no --node-name) egressd names clients
# from, both in its StateDirectory; egressd's control socket is in its
# RuntimeDirectory.
python3 - "$chroot_dir" > "$work/shape" 2>&1 << 'PY'
import os, re, sys, tomllib
root = sys.argv[1]
c = tomllib.load(open(f"{root}/etc/egressd/egressd.toml", "rb"))
controller = open(f"{root}/lib/systemd/system/egress-controller.service").read()
egressd = open(f"{root}/lib/systemd/system/egressd.service").read()
exec_start = re.search(r"^ExecStart=(.*)$", controller, re.M).group(1)
rules_dir = re.search(r"--rules-dir (\S+)", exec_start).group(1)
pod_map_arg = re.search(r"--pod-map (\S+)", exec_start)
pod_map = pod_map_arg.group(1) if pod_map_arg else ""
env = "\n".join(l for l in open(f"{root}/etc/egressd/controller.env").read().splitlines()
                if not l.lstrip().startswith("#"))
state_dirs = ["/var/lib/" + d for d in re.search(r"^StateDirectory=(.+)$", controller, re.M).group(1).split()]
map_file = c.get("attribution", {}).get("map_file", "")
runtime_dir = "/run/" + re.search(r"^RuntimeDirectory=(\S+)$", egressd, re.M).group(1)
wanted = {
    "dns.listen on every address, port 53": c["dns"]["listen"] == ["0.0.0.0:53"],
    "proxy.listen on every address, port 3128": c["proxy"]["listen"] == ["0.0.0.0:3128"],
    "metrics (/readyz) on every address, port 9153": c["metrics"]["listen"] == "0.0.0.0:9153",
    "nfqueue off": c["nfqueue"]["enabled"] is False,
    "mode enforce": c["mode"] == "enforce",
    f"the controller's --rules-dir {rules_dir} is one of its StateDirectory {state_dirs}": rules_dir in state_dirs,
    f"egressd reads {rules_dir}": rules_dir in c["rules"]["dirs"],
    f"the controller keeps a pod map (--pod-map {pod_map}) in its StateDirectory":
        bool(pod_map) and os.path.dirname(pod_map) in state_dirs,
    "of all pods (no --node-name, no NODE_NAME set: the central shape)":
        "--node-name" not in exec_start + env and not re.search(r"^\s*(Environment=.*)?NODE_NAME=", controller + env, re.M),
    f"egressd's attribution.map_file {map_file!r} is the controller's --pod-map": map_file == pod_map,
    f"control.socket in egressd's RuntimeDirectory {runtime_dir}": c["control"]["socket"].startswith(runtime_dir + "/"),
}
for name, good in wanted.items():
    print(("ok" if good else "FAIL") + ": shipped config: " + name)
PY
cat "$work/shape"
checks=$((checks + $(grep -c '^ok: \|^FAIL: ' "$work/shape")))
failures=$((failures + $(grep -c '^FAIL: ' "$work/shape")))
check "the shape check ran (11 lines)" [ "$(grep -c '^ok: \|^FAIL: ' "$work/shape")" = 11 ]

# ---- the units ------------------------------------------------------------------------------
# systemd-analyze verify against the installed root: the units as dpkg put
# them there, their programs present, and systemd's own units (sysinit.target
# ...) from the root's systemd package, installed only now so that it cannot
# have supplied a library egressd's Depends forgot.
if ! in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd' > "$work/apt-systemd.log" 2>&1; then
  tail -20 "$work/apt-systemd.log"
  fail "apt-get install systemd in the root (for systemd-analyze verify)"
fi
for unit in egressd.service egress-controller.service; do
  systemd-analyze verify --root="$chroot_dir" "$chroot_dir/lib/systemd/system/$unit" > "$work/verify.$unit" 2>&1
  rc=$?
  sed 's/^/  /' "$work/verify.$unit"
  check "systemd-analyze verify $unit exits 0 and says nothing ($rc)" sh -c "[ $rc = 0 ] && [ ! -s '$work/verify.$unit' ]"
done
unit="$chroot_dir/lib/systemd/system/egressd.service"
check "egressd.service: exactly NET_ADMIN NET_RAW NET_BIND_SERVICE BPF PERFMON" \
  grep -qx 'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_BPF CAP_PERFMON' "$unit"
check "egressd.service: the system call filter lets bpf(2) through (the eBPF programs and their rules)" \
  grep -qx 'SystemCallFilter=@system-service bpf' "$unit"
check "egressd.service: Restart=always, ProtectSystem=strict, NoNewPrivileges" \
  sh -c "grep -qx Restart=always '$unit' && grep -qx ProtectSystem=strict '$unit' && grep -qx NoNewPrivileges=yes '$unit'"
unit="$chroot_dir/lib/systemd/system/egress-controller.service"
check "egress-controller.service: DynamicUser, no capabilities, --kubeconfig from a credential" \
  sh -c "grep -qx DynamicUser=yes '$unit' && grep -qx CapabilityBoundingSet= '$unit' && grep -q 'ExecStart=.* --kubeconfig %d/kubeconfig' '$unit'"
# ---- the installed egressd serving, as its unit runs it ---------------------------------------
# No systemd runs here, so the unit's essentials are reproduced by hand: in
# a network namespace of its own (only lo), the root read-only
# (ProtectSystem=strict) with a fresh /run (RuntimeDirectory=egressd), the
# capability bounding set read from the installed unit, no new privileges,
# NOTIFY_SOCKET for Type=notify. Then, from inside the namespace: READY=1
# with the /readyz verdict in STATUS, /readyz 200 once the controller's
# directory exists, DNS answering (an unknown name denied: NXDOMAIN), the
# proxy refusing a name no rule set allows (403), SIGTERM: STOPPING=1.
netns="egdeb-$id"
# The gateway's own address, as the load balancer reaches it: a private
# (VPC) address, which the shipped proxy.clients default admits.
host_ip=10.99.0.7
ip netns add "$netns" && ip -n "$netns" link set lo up && ip -n "$netns" addr add "$host_ip/32" dev lo
caps="$(sed -n 's/^CapabilityBoundingSet=//p' "$chroot_dir/lib/systemd/system/egressd.service" |
  tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')"
exec_line="$(sed -n 's/^ExecStart=//p' "$chroot_dir/lib/systemd/system/egressd.service")"
mkdir -p "$chroot_dir/var/lib/egressd"
python3 - "$chroot_dir/tmp/notify.sock" "$work/notify.msgs" << 'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", " | ") + "\n")
PY
listener=$!
for _ in $(seq 50); do [ -S "$chroot_dir/tmp/notify.sock" ] && break; sleep 0.1; done
ip netns exec "$netns" unshare --mount --propagation private -- sh -c '
  root=$1; caps=$2; shift 2
  mount --bind "$root" "$root" && mount -o remount,bind,ro "$root" &&
    mount -t proc proc "$root/proc" && mount -t tmpfs -o mode=0755 tmpfs "$root/run" &&
    mount -t tmpfs tmpfs "$root/var/lib/egressd" &&
    mkdir -m 0755 "$root/run/egressd" &&
    exec chroot "$root" setpriv --bounding-set=-all,$caps --inh-caps=-all --no-new-privs \
      /usr/bin/env -i PATH=/usr/sbin:/usr/bin NOTIFY_SOCKET=/tmp/notify.sock "$@"' \
  run_unit "$chroot_dir" "$caps" $exec_line > "$work/egressd.log" 2>&1 &
egressd_pid=$!
waitfor() { for _ in $(seq "$2"); do grep -q -- "$1" "$work/notify.msgs" 2> /dev/null && return 0; sleep 0.1; done; return 1; }
check "the unit's ExecStart ($exec_line) with bounding set $caps, read-only root: READY=1" waitfor "READY=1" 100
check "STATUS names the controller's missing directory" waitfor "STATUS=not ready: rules failed: .*/var/lib/egressd/rules.d" 10
# What egress-controller's StateDirectory= does, in egressd's mount namespace
# (a tmpfs only it sees): the directory appears.
egressd_main="$(for p in $(ip netns pids "$netns"); do [ "$(cat "/proc/$p/comm")" = egressd ] && echo "$p"; done | head -1)"
nsenter -t "$egressd_main" -m mkdir "$chroot_dir/var/lib/egressd/rules.d"
check "then STATUS=ready: rules, dns" waitfor "STATUS=ready: rules, dns" 40
check "/readyz on 127.0.0.1:9153: 200" \
  [ "$(ip netns exec "$netns" curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://127.0.0.1:9153/readyz)" = 200 ]
check "/readyz on the host's address $host_ip:9153 (the load balancer's health check): 200" \
  [ "$(ip netns exec "$netns" curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$host_ip:9153/readyz")" = 200 ]
check "DNS on $host_ip:53: an unallowed name is NXDOMAIN" \
  sh -c "ip netns exec '$netns' kdig +timeout=2 +retry=0 @$host_ip unallowed.example A | grep -q 'status: NXDOMAIN'"
code="$(ip netns exec "$netns" curl -s -o /dev/null -w '%{http_connect}' --max-time 5 -x "http://$host_ip:3128" https://unallowed.example/)"
check "the proxy on $host_ip:3128 refuses CONNECT to an unallowed name: 403 ($code)" [ "$code" = 403 ]
code="$(ip netns exec "$netns" curl -s -o /dev/null -w '%{http_code}' --max-time 5 -x "http://$host_ip:3128" http://unallowed.example/)"
check "and GET http://unallowed.example/: 403 ($code)" [ "$code" = 403 ]
# NET_BIND_SERVICE (10), NET_ADMIN (12), NET_RAW (13), PERFMON (38), BPF (39).
check "egressd runs without root's other capabilities (CapEff = the unit's set)" \
  [ "$(awk '/^CapEff/ {print $2}' "/proc/$egressd_main/status")" = 000000c000003400 ]
kill -TERM "$egressd_main"
check "SIGTERM: STOPPING=1" waitfor "STOPPING=1" 50
wait "$egressd_pid"
check "egressd exits 0" [ $? = 0 ]
# The shipped config says log.format = "json": every line is one object.
check "its log is JSON lines, as the shipped log.format says ($(wc -l < "$work/egressd.log") lines)" \
  sh -c "jq -e -s 'length > 2 and all(.[]; (.ts | type) == \"string\" and (.event | type) == \"string\")' '$work/egressd.log' > /dev/null"
kill "$listener" 2> /dev/null
ip netns del "$netns"
sed 's/^/  notify: /' "$work/notify.msgs"

start=$(date +%s.%N)
systemd-analyze security --offline=yes --root="$chroot_dir" egressd.service egress-controller.service > "$work/security" 2>&1 &&
  grep -E '^→ Overall exposure' "$work/security" | sed 's/^/  systemd-analyze security: /'

echo "$((checks - failures)) of $checks checks passed"
[ "$failures" = 0 ]
