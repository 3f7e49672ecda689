# shellcheck shell=bash
# Sourced by tests/proxy/e2e_test.sh: Node, Go and Java clients through the
# proxy, each the way an application would set it (environment variables,
# Java's -Dhttps.proxyHost). Each client is built at test time; a toolchain
# that is missing is a named skip, not a pass.
#
# Needs: in_pod, expect_match, $proxy, $E2E_CA, $dir from the e2e test.

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/egressd-e2e"

node_client() {
  # Node's fetch honours HTTP(S)_PROXY through undici's EnvHttpProxyAgent
  # (Node 20 does not read the variables by itself).
  command -v node > /dev/null && command -v npm > /dev/null || return 77
  local mod="$cache_dir/node"
  if [ ! -d "$mod/node_modules/undici" ]; then
    mkdir -p "$mod"
    npm install --silent --prefix "$mod" undici@6.21.0 > "$dir/npm.log" 2>&1 || return 77
  fi
  cat > "$dir/client.js" << 'EOF'
const { EnvHttpProxyAgent, fetch } = require(process.env.UNDICI);
const dispatcher = new EnvHttpProxyAgent();
fetch(process.argv[2], { dispatcher, signal: AbortSignal.timeout(5000) })
  .then(async (r) => console.log(r.status, (await r.text()).trim()))
  .catch((e) => console.log("error", e.cause ? String(e.cause.message || e.cause) : e.message));
EOF
  in_pod env HTTPS_PROXY="http://$proxy" HTTP_PROXY="http://$proxy" NODE_EXTRA_CA_CERTS="$E2E_CA" \
    UNDICI="$mod/node_modules/undici" node "$dir/client.js" "$1"
}

go_client() {
  # net/http's ProxyFromEnvironment: what every Go program does by default.
  command -v go > /dev/null || return 77
  if [ ! -x "$dir/goclient" ]; then
    mkdir -p "$dir/goclient.src"
    cat > "$dir/goclient.src/main.go" << 'EOF'
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(os.Args[2])
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	r, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Println("error", err)
		return
	}
	body, _ := io.ReadAll(r.Body)
	fmt.Println(r.StatusCode, strings.TrimSpace(string(body)))
}
EOF
    (cd "$dir/goclient.src" && GO111MODULE=off GOFLAGS= go build -o "$dir/goclient" main.go) > "$dir/go.log" 2>&1 ||
      return 77
  fi
  in_pod env HTTPS_PROXY="http://$proxy" HTTP_PROXY="http://$proxy" "$dir/goclient" "$1" "$E2E_CA"
}

java_client() {
  # HttpURLConnection with -Dhttps.proxyHost/-Dhttp.proxyHost.
  command -v javac > /dev/null && command -v keytool > /dev/null || return 77
  if [ ! -f "$dir/java/ProxyClient.class" ]; then
    mkdir -p "$dir/java"
    cat > "$dir/java/ProxyClient.java" << 'EOF'
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URL;

public class ProxyClient {
  public static void main(String[] args) throws Exception {
    HttpURLConnection c = (HttpURLConnection) new URL(args[0]).openConnection();
    c.setConnectTimeout(5000);
    c.setReadTimeout(5000);
    try {
      int code = c.getResponseCode();
      InputStream in = code < 400 ? c.getInputStream() : c.getErrorStream();
      String body = in == null ? "" : new String(in.readAllBytes(), "UTF-8");
      System.out.println(code + " " + body.trim());
    } catch (java.io.IOException e) {
      System.out.println("error " + e.getMessage());
    }
  }
}
EOF
    javac -d "$dir/java" "$dir/java/ProxyClient.java" > "$dir/javac.log" 2>&1 || return 77
    keytool -importcert -noprompt -alias e2e -file "$E2E_CA" -keystore "$dir/java/trust.p12" \
      -storetype PKCS12 -storepass changeit > /dev/null 2>&1 || return 77
  fi
  local host=${proxy%:*} port=${proxy##*:}
  in_pod java -Dhttps.proxyHost="$host" -Dhttps.proxyPort="$port" -Dhttp.proxyHost="$host" \
    -Dhttp.proxyPort="$port" -Djavax.net.ssl.trustStore="$dir/java/trust.p12" \
    -Djavax.net.ssl.trustStorePassword=changeit -cp "$dir/java" ProxyClient "$1"
}

# check_client NAME FUNCTION REFUSED: allowed over CONNECT and absolute-form,
# a denied name refused by the proxy (REFUSED: how the client reports a
# CONNECT answered 403). The server's log is checked by the caller.
check_client() {
  local name=$1 fn=$2 refused=$3 out rc
  out="$($fn https://api.example.com/)"
  rc=$?
  if [ $rc -eq 77 ]; then
    echo "skip: $name client (toolchain or package missing: see $dir/*.log)"
    return
  fi
  expect_match "$name over CONNECT" '^200 vhost=api.example.com scheme=https' "$out"
  expect_match "$name absolute-form" '^200 vhost=api.example.com scheme=http' "$($fn http://api.example.com/)"
  if [ "$name" != node ]; then
    expect_match "$name absolute-form to a denied name: 403 with the reason" \
      '^403 egressd denied GET edge.example.net:80' "$($fn http://edge.example.net/)"
  fi
  expect_match "$name CONNECT to a denied name is refused" "$refused" "$($fn https://edge.example.net/)"
}

run_other_clients() {
  # undici tunnels http:// URLs through CONNECT too, and reports a refused
  # CONNECT as a cancelled request; Go names the status text.
  check_client node node_client '^error '
  check_client go go_client 'Forbidden|403'
  check_client java java_client '403'
  expect_eq "... and edge.example.net was never served to any of them" 0 "$(served 'edge.example.net')"
}
