#!/usr/bin/env bash
# Builds the Debian package of egressd for gateway hosts (`make deb`;
# docs/gateway.md): BUILD_DIR/egressd_VERSION_ARCH.deb with
#
#   /usr/sbin/egressd, /usr/sbin/egress-controller, /usr/bin/egressctl
#                             (stripped; debug info stays in BUILD_DIR/bin)
#   /lib/systemd/system/egressd.service, egress-controller.service
#   /etc/egressd/egressd.toml         conffile: the central-gateway config
#   /etc/egressd/controller.env       conffile: the controller's settings
#   /etc/egressd/system.d/            hand-placed (system) rule sets
#   /usr/share/doc/egressd/           copyright, changelog, README.gateway.md
#
#   scripts/deb/build.sh [BUILD_DIR]      (default: build)
#
# VERSION is the CMake project version (`egressd --version`). Depends is
# computed by dpkg-shlibdeps from the libraries the three programs link,
# plus publicsuffix (a data file egressd reads at start, no library);
# iptables is only recommended (needed with nfqueue.enabled, off in the
# gateway config). Reproducible: every file stamped with SOURCE_DATE_EPOCH
# (default: the last commit's time), owners root:root, modes fixed, entries
# sorted by dpkg-deb, xz; the same binaries give the same bytes.
# DEB_OUT overrides the output file; it is printed on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
cd "$root"

die() { echo "deb/build.sh: $*" >&2; exit 1; }
for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$tool" > /dev/null || die "$tool is missing: scripts/install-deps.sh deb installs it"
done
for bin in egressd egress-controller egressctl; do
  [[ -x $build/bin/$bin ]] || die "$build/bin/$bin is missing: run make first"
done
version=$("$build/bin/egressd" --version | awk '{print $2}')
project_version=$(sed -n 's/^project(egressd VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[[ $version == "$project_version" ]] ||
  die "$build/bin/egressd says version '$version' but CMakeLists.txt says '$project_version': rebuild"
arch=$(dpkg --print-architecture)
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
  SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2> /dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH
out=${DEB_OUT:-$build/egressd_${version}_$arch.deb}

work=$(mktemp -d "$build/.deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 022
pkg=$work/pkg

# ---- files -------------------------------------------------------------------
install -d "$pkg/usr/sbin" "$pkg/usr/bin" "$pkg/lib/systemd/system" \
  "$pkg/etc/egressd/system.d" "$pkg/usr/share/doc/egressd" "$pkg/DEBIAN"
strip --strip-unneeded -o "$pkg/usr/sbin/egressd" "$build/bin/egressd"
strip --strip-unneeded -o "$pkg/usr/sbin/egress-controller" "$build/bin/egress-controller"
strip --strip-unneeded -o "$pkg/usr/bin/egressctl" "$build/bin/egressctl"
chmod 0755 "$pkg/usr/sbin/egressd" "$pkg/usr/sbin/egress-controller" "$pkg/usr/bin/egressctl"
install -m 0644 "$here/egressd.service" "$here/egress-controller.service" "$pkg/lib/systemd/system/"
install -m 0644 "$here/egressd.toml" "$here/controller.env" "$pkg/etc/egressd/"
install -m 0644 "$root/docs/gateway.md" "$pkg/usr/share/doc/egressd/README.gateway.md"
sed "s/@YEAR@/$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)/" "$here/copyright" > "$pkg/usr/share/doc/egressd/copyright"
chmod 0644 "$pkg/usr/share/doc/egressd/copyright"
changelog_date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
printf 'egressd (%s) unstable; urgency=medium\n\n  * Built from the egressd repository (git %s).\n\n -- %s  %s\n' \
  "$version" "$(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown)" \
  "$(sed -n 's/^Maintainer: //p' "$here/control.in")" "$changelog_date" |
  gzip -9n > "$pkg/usr/share/doc/egressd/changelog.gz"
chmod 0644 "$pkg/usr/share/doc/egressd/changelog.gz"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$pkg/DEBIAN/"
printf '/etc/egressd/egressd.toml\n/etc/egressd/controller.env\n' > "$pkg/DEBIAN/conffiles"

# ---- Depends from the linked libraries -----------------------------------------
# dpkg-shlibdeps wants a source tree's debian/control naming the package.
mkdir -p "$work/src/debian"
printf 'Source: egressd\n\nPackage: egressd\nArchitecture: any\n' > "$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O -e"$pkg/usr/sbin/egressd" \
  -e"$pkg/usr/sbin/egress-controller" -e"$pkg/usr/bin/egressctl" 2> "$work/shlibdeps.log") ||
  { cat "$work/shlibdeps.log" >&2; die "dpkg-shlibdeps failed"; }
depends=$(sed -n 's/^shlibs:Depends=//p' <<< "$shlibs")
[[ -n $depends ]] || die "dpkg-shlibdeps computed no dependencies: $shlibs"
grep -v '^$' "$work/shlibdeps.log" >&2 || true

# ---- control, md5sums, time stamps -----------------------------------------------
installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@DEPENDS@/$depends/" \
  -e "s/@INSTALLED_SIZE@/$installed_size/" "$here/control.in" | grep -v '^#' > "$pkg/DEBIAN/control"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/md5sums"
find "$pkg" -type d -exec chmod 0755 {} +
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

dpkg-deb --root-owner-group -Zxz -z9 --build "$pkg" "$out" > /dev/null
echo "deb/build.sh: $(du -h "$out" | cut -f1) $out; Depends: $(dpkg-deb -f "$out" Depends)" >&2
echo "$out"
