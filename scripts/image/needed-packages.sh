#!/usr/bin/env bash
# Prints the Debian packages holding the shared libraries that the given
# ELF files link directly (their NEEDED entries -> ldconfig -p -> dpkg -S),
# one a line, sorted. The Containerfile installs these in the runtime stage
# (apt adds their own dependencies); scripts/image/build.py does the same
# walk itself, transitively, for `make image`.
#
#   scripts/image/needed-packages.sh build/bin/egressd build/bin/egress-controller ...
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 ELF..." >&2; exit 2; }
declare -A path
while read -r soname _ arrow file; do
  [ "$arrow" = "=>" ] && [ -z "${path[$soname]:-}" ] && path[$soname]=$file
done < <(ldconfig -p | grep 'x86-64' | sed 's/ (\([^)]*\))/ \1/')
for elf in "$@"; do
  readelf -d -W "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | while read -r soname; do
    file="${path[$soname]:-}"
    [ -n "$file" ] || { echo "needed-packages.sh: $elf needs $soname, which this machine does not have" >&2; exit 1; }
    owner=$(dpkg -S "$file" 2> /dev/null || dpkg -S "$(readlink -f "$file")" 2> /dev/null \
      || dpkg -S "/usr$(readlink -f "$file")" 2> /dev/null || dpkg -S "${file#/usr}" 2> /dev/null) \
      || { echo "needed-packages.sh: no package owns $file ($soname, needed by $elf)" >&2; exit 1; }
    echo "${owner%%:*}" | sed 's/,.*//'
  done
done | sort -u
