#!/usr/bin/env bash
# Python tools from PyPI that tests need and Debian does not package at the
# version we pin: cfn-lint (tests/deploy, the AWS template). They live in a
# virtualenv outside the work tree, one per pinned set, so a fresh clone, CI
# and several work trees share it:
#   scripts/python-tools.sh install   create the virtualenv if missing (idempotent)
#   scripts/python-tools.sh bin       print its bin/ directory
# EGRESSD_TOOLS_CACHE overrides the cache folder ($HOME/.cache/egressd-tools).
set -euo pipefail

# The pinned set; change a version here and a new virtualenv is made.
requirements=("cfn-lint==1.51.0")

cache="${EGRESSD_TOOLS_CACHE:-${HOME:-/root}/.cache/egressd-tools}"
key="$(printf '%s\n' "${requirements[@]}" | sha256sum | cut -c1-12)"
venv="$cache/venv-$key"

case "${1:-}" in
  bin) echo "$venv/bin" ;;
  install)
    if [[ -x "$venv/bin/cfn-lint" ]] && "$venv/bin/cfn-lint" --version > /dev/null 2>&1; then
      exit 0
    fi
    echo "python-tools: installing ${requirements[*]} into $venv" >&2
    mkdir -p "$cache"
    rm -rf "$venv"
    # Debian's python3 (python3-venv), not whatever python3 is first on PATH.
    # A failed install leaves no half-made virtualenv behind.
    if ! /usr/bin/python3 -m venv "$venv" ||
      ! "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"; then
      rm -rf "$venv"
      echo "python-tools: could not install ${requirements[*]} (is PyPI reachable? python3-venv installed?)" >&2
      exit 1
    fi
    "$venv/bin/cfn-lint" --version >&2
    ;;
  *) echo "usage: $0 install|bin" >&2; exit 2 ;;
esac
