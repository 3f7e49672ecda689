#!/usr/bin/env bash
# egress-controller and an HTTP 410 status on the watch request itself
# (not the ERROR event, which k8s.controller covers against the real API
# server): it must relist, remove the files of objects that vanished, and
# watch from the new list's resourceVersion. For contrast, an HTTP 500 on
# the same request must not relist: back off and watch again from the same
# resourceVersion.
#
# Why a scripted server (tests/controller/fake_apiserver.py, real TLS on
# 127.0.0.1) and not kube-apiserver: kube-apiserver v1.37 answers a watch
# from a compacted resourceVersion with HTTP 200 and an ERROR event (code
# 410), with and without its watch cache, cluster-wide and namespaced
# (tried; docs/kubernetes-testing.md). Only lists answer HTTP 410 (an
# expired continue token, resourceVersionMatch=Exact on a compacted
# version). Other servers in front of or instead of it may send the status.
#
#   EGRESSD_BIN=build/bin tests/controller/watch_http410_test.sh
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${EGRESSD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
controller="${EGRESSD_BIN:-$src/build/bin}/egress-controller"
py=python3
[[ -x /usr/bin/python3 ]] && py=/usr/bin/python3

passed=0
failed=0
ok() {
  echo "  ok: $*"
  passed=$((passed + 1))
}
fail() {
  echo "  FAIL: $*"
  failed=$((failed + 1))
}

[[ -x "$controller" ]] || {
  echo "FATAL: $controller not built"
  exit 1
}
work="$(mktemp -d "${TMPDIR:-/tmp}/egressd-watch410.XXXXXX")"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2> /dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # TRIES(0.1 s) COMMAND...
  local i
  for ((i = 0; i < $1; i++)); do
    "${@:2}" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# A CA and a serving certificate for 127.0.0.1: the controller verifies it.
(
  cd "$work"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=test-ca \
    -keyout ca.key -out ca.crt -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=fake-apiserver \
      -keyout server.key -out server.csr &&
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext &&
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
      -extfile server.ext -out server.crt
) > "$work/openssl.log" 2>&1 || {
  echo "FATAL: certificates: $(tail -3 "$work/openssl.log")"
  exit 1
}
token="$(openssl rand -hex 16)"

# run MODE: fake server answering the first watch with MODE, and the
# controller against it. Sets $dir (rules dir), $requests, $log.
run() {
  local mode="$1"
  dir="$work/rules-$mode"
  requests="$work/requests-$mode.log"
  log="$work/controller-$mode.log"
  mkdir -p "$dir"
  : > "$requests"
  "$py" "$here/fake_apiserver.py" "$work/server.crt" "$work/server.key" "$token" "$work/port-$mode" \
    "$requests" "$mode" > "$work/server-$mode.log" 2>&1 &
  pids+=($!)
  if ! wait_for 100 test -s "$work/port-$mode"; then
    fail "fake API server ($mode) did not start: $(tail -3 "$work/server-$mode.log")"
    return 1
  fi
  cat > "$work/$mode.kubeconfig" << EOF
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: https://127.0.0.1:$(cat "$work/port-$mode")
    certificate-authority: $work/ca.crt
users:
- name: u
  user:
    token: $token
contexts:
- name: x
  context: {cluster: fake, user: u}
current-context: x
EOF
  "$controller" --kubeconfig "$work/$mode.kubeconfig" --rules-dir "$dir" --log-level debug > "$log" 2>&1 &
  pids+=($!)
}

echo "== HTTP 410 on the watch request: relist"
run 410 || exit 1
if wait_for 100 test -f "$dir/team-a_c.json"; then
  ok "the event after the relist arrived (team-a_c.json)"
else
  fail "team-a_c.json never appeared: $(ls "$dir")"
fi
if grep -q 'event=watch.gone resource_version=100 source=http' "$log"; then
  ok "logged: $(grep -m1 'event=watch.gone' "$log" | sed 's/.*event=/event=/')"
else
  fail "no watch.gone source=http in the log: $(grep -E 'watch|list' "$log" | tail -5)"
fi
# The requests in order, status patches left out.
seq_got="$(grep '^GET' "$requests" | head -4 | paste -sd, -)"
if [[ "$seq_got" == "GET list,GET watch rv=100,GET list,GET watch rv=200" ]]; then
  ok "requests: $seq_got (the new watch starts from the new list's version)"
else
  fail "requests: $seq_got"
fi
if [[ ! -e "$dir/team-a_a.json" && -f "$dir/team-a_b.json" ]]; then
  ok "after the relist: a (no longer listed) removed, b written"
else
  fail "rules dir after the relist: $(ls "$dir")"
fi
if [[ "$(grep -c '^GET list' "$requests")" == 2 ]] && ! grep -q unauthorized "$requests"; then
  ok "exactly two lists, every request with the bearer token"
else
  fail "requests: $(paste -sd, - < "$requests")"
fi

echo "== HTTP 500 on the watch request: no relist, retry from the same version"
run 500 || exit 1
rewatched() { (($(grep -c '^GET watch rv=100' "$requests") >= 2)); }
if wait_for 100 rewatched; then
  ok "watched again from resourceVersion 100 after the failure"
else
  fail "no second watch: $(paste -sd, - < "$requests")"
fi
if [[ "$(grep -c '^GET list' "$requests")" == 1 ]] && ! grep -q 'event=watch.gone' "$log" &&
  grep -q 'event=watch.failed error="HTTP 500: scripted failure"' "$log"; then
  ok "one list only, logged: $(grep -m1 'event=watch.failed' "$log" | sed 's/.*event=/event=/')"
else
  fail "lists $(grep -c '^GET list' "$requests"); log: $(grep -E 'watch|list' "$log" | tail -4)"
fi
if [[ -f "$dir/team-a_a.json" && ! -e "$dir/team-a_b.json" ]]; then
  ok "files as of the first list (a), nothing relisted"
else
  fail "rules dir: $(ls "$dir")"
fi

echo "watch.http410: $passed passed, $failed failed"
((failed == 0))
