// e2e-quic is a real QUIC v1 client and server (golang.org/x/net/quic) for
// the end-to-end tests (tests/e2e/quic_test.sh). crypto/tls offers
// X25519MLKEM768 by default, so the client's ClientHello is post-quantum
// sized and spans two Initial packets, as from current browsers.
//
//	e2e-quic server ADDR CERTDIR
//	    accepts QUIC on ADDR (e.g. ":4443"); the certificate is
//	    CERTDIR/<SNI>.pem and .key (topology.sh's test CA), so any test name
//	    would complete a handshake if the gateway let it through. Each stream
//	    is echoed back; one log line per accepted connection:
//	    "accepted sni=NAME from=IP:PORT".
//	e2e-quic client ADDR SNI CAFILE TIMEOUT
//	    dials ADDR (IP:port) with SNI, verifies the server against CAFILE,
//	    sends "ping SNI" on a stream and expects it back. Prints "ok" and
//	    exits 0, or prints the error and exits 1.
//	e2e-quic https ADDR SNI CAFILE TIMEOUT
//	    the same post-quantum ClientHello over TCP (TLS 1.3, one write of
//	    more than one MSS): GET / with Host SNI; prints the status line, or
//	    the error and exits 1.
//
// Build: go build -o e2e-quic .   (golang.org/x/net from the Go module proxy)
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/net/quic"
)

func main() {
	if len(os.Args) == 4 && os.Args[1] == "server" {
		if err := server(os.Args[2], os.Args[3]); err != nil {
			fmt.Println("server:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 6 && os.Args[1] == "client" {
		timeout, err := time.ParseDuration(os.Args[5])
		if err == nil {
			err = client(os.Args[2], os.Args[3], os.Args[4], timeout)
		}
		if err != nil {
			fmt.Println("client:", err)
			os.Exit(1)
		}
		fmt.Println("ok")
		return
	}
	if len(os.Args) == 6 && os.Args[1] == "https" {
		timeout, err := time.ParseDuration(os.Args[5])
		status := ""
		if err == nil {
			status, err = httpsGet(os.Args[2], os.Args[3], os.Args[4], timeout)
		}
		if err != nil {
			fmt.Println("https:", err)
			os.Exit(1)
		}
		fmt.Println(status)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: e2e-quic server ADDR CERTDIR | client|https ADDR SNI CAFILE TIMEOUT")
	os.Exit(2)
}

func server(addr, certDir string) error {
	tlsConfig := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"e2e"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			// The SNI names a file: refuse anything that could leave the directory.
			name := hello.ServerName
			if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
				return nil, errors.New("no certificate for this name")
			}
			cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, name+".pem"), filepath.Join(certDir, name+".key"))
			return &cert, err
		},
	}
	ep, err := quic.Listen("udp", addr, &quic.Config{TLSConfig: tlsConfig, MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	fmt.Println("listening", ep.LocalAddr())
	for {
		conn, err := ep.Accept(context.Background())
		if err != nil {
			return err
		}
		go serve(conn)
	}
}

func serve(conn *quic.Conn) {
	fmt.Printf("accepted sni=%s from=%s\n", conn.ConnectionState().ServerName, conn.RemoteAddr())
	for {
		stream, err := conn.AcceptStream(context.Background())
		if err != nil {
			return
		}
		go func() {
			defer stream.Close()
			if _, err := io.Copy(stream, stream); err == nil {
				stream.Flush()
			}
		}()
	}
}

func loadRoots(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in " + caFile)
	}
	return roots, nil
}

// httpsGet sends one HTTP/1.1 request over TLS 1.3 with Go's default key
// shares (X25519MLKEM768 and X25519) and returns the response's status line.
func httpsGet(addr, sni, caFile string, timeout time.Duration) (string, error) {
	roots, err := loadRoots(caFile)
	if err != nil {
		return "", err
	}
	dialer := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(dialer, "tcp", addr, &tls.Config{ServerName: sni, RootCAs: roots, MinVersion: tls.VersionTLS13})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", sni); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func client(addr, sni, caFile string, timeout time.Duration) error {
	roots, err := loadRoots(caFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ep, err := quic.Listen("udp", ":0", nil)
	if err != nil {
		return err
	}
	defer func() {
		// Close waits for connections to drain; a failed dial has none, but do not hang.
		closeCtx, stop := context.WithTimeout(context.Background(), time.Second)
		defer stop()
		ep.Close(closeCtx)
	}()
	tlsConfig := &tls.Config{ServerName: sni, RootCAs: roots, NextProtos: []string{"e2e"}, MinVersion: tls.VersionTLS13}
	conn, err := ep.Dial(ctx, "udp", addr, &quic.Config{TLSConfig: tlsConfig})
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	defer conn.Abort(nil)
	stream, err := conn.NewStream(ctx)
	if err != nil {
		return err
	}
	stream.SetReadContext(ctx)
	stream.SetWriteContext(ctx)
	want := "ping " + sni
	if _, err := stream.Write([]byte(want)); err != nil {
		return err
	}
	if err := stream.CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(stream)
	if err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if string(got) != want {
		return fmt.Errorf("echo: got %q, want %q", got, want)
	}
	return nil
}
