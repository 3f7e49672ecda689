#!/usr/bin/env bash
# The repository stands on its own: README and docs/ link only to files
# that exist in it (no ../shared/design, RULES.md, ARCHITECTURE.md), and
# the rule semantics and architecture pages exist and say what the
# contract says. A control shows the link check can fail.
set -uo pipefail
src="${EGRESSD_SOURCE_DIR:?}"
failures=0; checks=0
ok() { checks=$((checks + 1)); echo "ok: $1"; }
fail() { checks=$((checks + 1)); failures=$((failures + 1)); echo "FAIL: $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/    /'; }

cd "$src" || exit 1
outside="$(grep -rn 'shared/design\|RULES\.md\|ARCHITECTURE\.md' --include='*.md' --include='*.cc' --include='*.h' \
  --include='*.yaml' --include='*.toml' README.md docs cli common config controller daemon deploy dns examples nfq \
  observe policy sni 2> /dev/null)"
[ -z "$outside" ] && ok "no reference to design documents outside the repository" \
  || fail "references to documents outside the repository" "$outside"

# Every relative markdown link [text](target) of README.md and docs/*.md
# names an existing file (anchors and URLs aside).
broken_links() {  # FILE... -> "file: target" per broken link
  python3 - "$@" << 'PY'
import os, re, sys
for path in sys.argv[1:]:
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # not inside code blocks
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = target.split("#", 1)[0]
        if not os.path.exists(os.path.join(os.path.dirname(path), file)):
            print(f"{path}: {target}")
PY
}
broken="$(broken_links README.md docs/*.md deploy/node-local-dns/README.md)"
[ -z "$broken" ] && ok "every relative link in README.md and docs/ resolves" || fail "broken links" "$broken"
work="$(mktemp -d)"
printf 'see [the design](../shared/design/RULES.md) and [rules](rules.md)\n' > "$work/control.md"
touch "$work/rules.md"
control="$(broken_links "$work/control.md")"
rm -rf "$work"
[ "$control" = "$work/control.md: ../shared/design/RULES.md" ] && ok "control: a link outside is caught" \
  || fail "control: the link check missed a broken link" "$control"

for page in docs/rules.md docs/architecture.md; do
  [ -s "$page" ] && ok "$page exists" || fail "$page is missing"
done
grep -q '(docs/rules.md)' README.md && grep -q '(docs/architecture.md)' README.md \
  && ok "README links rules.md and architecture.md" || fail "README does not link rules.md and architecture.md"
# (Phrases may wrap: the page is read as one line.)
for phrase in '## World access' 'never covers internal destinations' 'A refused target never takes anything else down' \
  '## Audit mode' 'DNS resolves every name' 'world access makes every name resolvable'; do
  tr '\n' ' ' < docs/rules.md | grep -qF -- "$phrase" && ok "docs/rules.md: $phrase" || fail "docs/rules.md lacks: $phrase"
done

echo "$((checks - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
