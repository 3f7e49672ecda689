#!/usr/bin/env bash
# Installs the Debian packages egressd needs to build, test, demo and bench.
# Idempotent: only missing packages are installed, so `make` stays fast on a
# machine that already has them. Package groups are documented in README.md.
set -euo pipefail

group="${1:-build}"

build_pkgs=(
  build-essential cmake ninja-build pkg-config
  libldns-dev libevent-dev libssl-dev libnetfilter-queue-dev libmnl-dev
  libtomlplusplus-dev libyaml-dev nlohmann-json3-dev libcli11-dev
  libpsl-dev publicsuffix libidn2-dev catch2 libcurl4-openssl-dev
  clang  # the kernel verdict's eBPF program (nfq/bpf/), compiled for the BPF target
)
test_pkgs=(
  clang libclang-rt-14-dev clang-format clang-tidy
  iproute2 iptables conntrack ipset curl openssl netcat-openbsd
  knot-dnsutils dnsutils unbound tcpdump nginx-light python3 python3-scapy jq libcap2-bin
  python3-requests default-jdk-headless python3-venv python3-yaml
  haproxy dnsdist
)
bench_pkgs=(dnsperf wrk squid-openssl python3-matplotlib valgrind time)
# make image (scripts/image/build.py): apt-get download + dpkg-deb, readelf
# and strip (binutils), and the image's own packages installed here too, so
# that their libraries' packages can be found with `dpkg -S`.
image_pkgs=(python3 binutils iptables ipset iproute2 dash publicsuffix)
# make deb (scripts/deb/build.sh): dpkg-deb and dpkg-shlibdeps (dpkg-dev),
# strip (binutils). tests/package also lints the package (lintian), checks
# the units (systemd-analyze, in systemd) and installs it into a fresh
# Debian 12 root (debootstrap; unshare and chroot are in util-linux and
# coreutils).
deb_pkgs=(dpkg-dev binutils)
deb_test_pkgs=(dpkg-dev binutils debootstrap lintian systemd util-linux)
# tests/image: a private containerd that imports and runs the image; skopeo
# reads the archive as `skopeo copy` to a registry would.
image_test_pkgs=(containerd runc skopeo)
# tests/k8s/cluster.sh: the single-node test cluster's runtime (containerd,
# runc, the CNI plugins bridge/host-local/portmap/loopback in /usr/lib/cni)
# and nsenter (util-linux) to start its parts in the node's namespace; the
# pause image is compiled statically (libc6-dev, in build-essential).
cluster_pkgs=(containerd runc containernetworking-plugins util-linux)

# The benchmarks run the same topologies as the tests (bench/cluster the
# test cluster, bench/dmz the packaged gateways), so bench is test plus its
# peers.
all_test_pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}" "${image_pkgs[@]}" "${image_test_pkgs[@]}"
  "${cluster_pkgs[@]}" "${deb_test_pkgs[@]}")
case "$group" in
  build) want=("${build_pkgs[@]}") ;;
  test) want=("${all_test_pkgs[@]}") ;;
  bench) want=("${all_test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  image) want=("${build_pkgs[@]}" "${image_pkgs[@]}") ;;
  deb) want=("${build_pkgs[@]}" "${deb_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench|image|deb]" >&2; exit 2 ;;
esac

# PyPI tools of the test group (cfn-lint), in a virtualenv outside the tree
# (scripts/python-tools.sh); needs python3-venv, so after the packages.
python_tools() {
  if [ "$group" = test ]; then
    "$(dirname "$0")/python-tools.sh" install
  fi
}

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  python_tools
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
python_tools
