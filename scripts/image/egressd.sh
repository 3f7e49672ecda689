#!/usr/bin/env bash
# Builds the egressd image (`make image`): build/egressd-image.tar, an OCI
# archive named localhost/egressd:VERSION (VERSION: `egressd --version`, the
# CMake project version), holding egressd, egress-controller and egressctl
# (stripped), egressd-pause (scripts/image/pause.c), the shared libraries they link and the packages in
# egressd.packages, with iptables/ip6tables on the nf_tables backend.
#
#   scripts/image/egressd.sh [BUILD_DIR]      (default: build)
#
# IMAGE_NAME overrides the name (default localhost/egressd), IMAGE_OUT the
# archive (default BUILD_DIR/egressd-image.tar), IMAGE_CACHE where the .deb
# files are kept (default BUILD_DIR/image-cache), SOURCE_DATE_EPOCH
# the time stamped on every file (default: the last commit's time).
# scripts/image/build.py does the work; README.md "Deploying" says how to
# load the archive into kind, containerd or a registry.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
cd "$root"

for bin in egressd egress-controller egressctl; do
  [[ -x $build/bin/$bin ]] || { echo "egressd.sh: $build/bin/$bin is missing: run make first" >&2; exit 1; }
done
version=$("$build/bin/egressd" --version | awk '{print $2}')
project_version=$(sed -n 's/^project(egressd VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
if [[ $version != "$project_version" ]]; then
  echo "egressd.sh: $build/bin/egressd says version '$version' but CMakeLists.txt says '$project_version': rebuild" >&2
  exit 1
fi
name=${IMAGE_NAME:-localhost/egressd}

# Debug info stays in build/bin; the image gets stripped copies (strip is
# deterministic: the same binary gives the same bytes).
stripped=$(mktemp -d "$build/.image-bin.XXXXXX")
trap 'rm -rf "$stripped"' EXIT
for bin in egressd egress-controller egressctl; do
  strip --strip-unneeded -o "$stripped/$bin" "$build/bin/$bin"
done
# The uninstall DaemonSet's idle container (deploy/uninstall): static, so it
# adds no library; the same source as the test cluster's pause image.
"${CC:-cc}" -static -Os -s -Wall -Wextra -Werror -o "$stripped/egressd-pause" "$here/pause.c" ||
  { echo "egressd.sh: cannot compile a static egressd-pause (libc6-dev provides libc.a)" >&2; exit 1; }

# iptables on nf_tables only (what Debian's update-alternatives picks by
# default), so no legacy binaries; iptables-apply, ip6tables-apply and routel
# are bash/sh scripts nobody runs in a container. glibc's gconv modules are
# iconv(3) charsets: the programs here only convert UTF-8 and ASCII, which
# glibc has built in (8 MiB less).
nft=()
legacy=()
for tool in iptables ip6tables; do
  for suffix in "" -save -restore; do
    nft+=(--symlink "/usr/sbin/$tool$suffix=xtables-nft-multi")
    legacy+=(--remove "/usr/sbin/$tool-legacy$suffix")
  done
done

exec "$here/build.py" \
  --tag "$name:$version" \
  --out "${IMAGE_OUT:-$build/egressd-image.tar}" \
  --cache "${IMAGE_CACHE:-$build/image-cache}" \
  --packages "$here/egressd.packages" \
  --add "$stripped/egressd:/usr/local/bin/egressd:755" \
  --add "$stripped/egress-controller:/usr/local/bin/egress-controller:755" \
  --add "$stripped/egressctl:/usr/local/bin/egressctl:755" \
  --add "$stripped/egressd-pause:/usr/local/bin/egressd-pause:755" \
  "${nft[@]}" \
  "${legacy[@]}" \
  --remove /usr/sbin/xtables-legacy-multi \
  --remove /usr/bin/iptables-xml \
  --remove /usr/sbin/iptables-apply \
  --remove /usr/sbin/ip6tables-apply \
  --remove /usr/bin/routel \
  --remove /usr/lib/x86_64-linux-gnu/gconv \
  --mkdir /etc/egressd/system.d \
  --mkdir /var/lib/egressd/rules.d \
  --mkdir /run/egressd \
  --entrypoint '["egressd"]' \
  --cmd '["--config", "/etc/egressd/egressd.toml"]' \
  --label "org.opencontainers.image.title=egressd" \
  --label "org.opencontainers.image.description=egressd, egress-controller and egressctl on Debian bookworm packages" \
  --label "org.opencontainers.image.version=$version"
