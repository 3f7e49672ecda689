#!/usr/bin/env bash
# cfn-lint (pinned in scripts/python-tools.sh, installed by
# scripts/install-deps.sh test) on every CloudFormation template under
# deploy/aws/, then on a broken copy, which must fail: the linter really runs
# and reads the file.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
cfn_lint="$("$src/scripts/python-tools.sh" bin)/cfn-lint"
if [[ ! -x "$cfn_lint" ]]; then
  echo "FAIL no cfn-lint at $cfn_lint: run scripts/install-deps.sh test (or scripts/python-tools.sh install)"
  exit 1
fi
failed=0
work="$(mktemp -d "${TMPDIR:-/tmp}/deploy-aws-lint.XXXXXX")"
trap 'rm -rf "$work"' EXIT

mapfile -t templates < <(find "$src/deploy/aws" -name '*.yaml' | sort)
if ((${#templates[@]} == 0)); then
  echo "FAIL no templates under deploy/aws"
  exit 1
fi
for t in "${templates[@]}"; do
  if "$cfn_lint" --format parseable -- "$t" > "$work/out" 2>&1; then
    echo "ok   cfn-lint $("$cfn_lint" --version) ${t#"$src"/}"
  else
    echo "FAIL cfn-lint ${t#"$src"/}:"
    cat "$work/out"
    failed=$((failed + 1))
  fi
done

# A resource type that does not exist and a target group protocol an NLB
# does not have: cfn-lint must refuse both.
sed -e 's/Type: AWS::ElasticLoadBalancingV2::Listener/Type: AWS::ElasticLoadBalancingV2::Listner/' \
  -e 's/Protocol: TCP_UDP/Protocol: TCP_UPD/' "${templates[0]}" > "$work/broken.yaml"
if cmp -s "${templates[0]}" "$work/broken.yaml"; then
  echo "FAIL the broken copy equals the template (the sed patterns no longer match)"
  failed=$((failed + 1))
elif "$cfn_lint" --format parseable -- "$work/broken.yaml" > "$work/broken.out" 2>&1; then
  echo "FAIL cfn-lint accepted a broken copy"
  failed=$((failed + 1))
elif grep -q 'Listner' "$work/broken.out" && grep -q 'TCP_UPD' "$work/broken.out"; then
  echo "ok   cfn-lint refuses a broken copy: $(wc -l < "$work/broken.out") findings"
else
  echo "FAIL cfn-lint failed on the broken copy without naming both faults:"
  cat "$work/broken.out"
  failed=$((failed + 1))
fi
echo "deploy.aws_lint: $failed failed"
((failed == 0))
