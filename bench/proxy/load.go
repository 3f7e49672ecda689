// The proxy benchmark's client (bench/proxy/run.sh builds it with the Go
// toolchain, no modules): new tunnels per second and bulk throughput,
// through an HTTP CONNECT proxy or directly.
//
//	load tunnels PROXY|direct TARGET HOST SECONDS CONCURRENCY
//	    each worker: connect, CONNECT TARGET, one "GET /" for HOST inside
//	    the tunnel, read the response to its end, close; prints
//	    "tunnels_per_s=N errors=M"
//	load bulk PROXY|direct TARGET HOST PATH SECONDS
//	    one connection, one GET PATH, read for SECONDS; prints "bytes_per_s=N"
//	load idle PROXY TARGET COUNT SECONDS
//	    COUNT tunnels opened and held SECONDS (for memory per idle tunnel);
//	    prints "open=N"
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func open(proxy, target string) (net.Conn, *bufio.Reader, error) {
	addr := target
	if proxy != "direct" {
		addr = proxy
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReaderSize(c, 64*1024)
	if proxy == "direct" {
		return c, r, nil
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	line, err := r.ReadString('\n')
	if err != nil || !strings.Contains(line, " 200") {
		c.Close()
		return nil, nil, fmt.Errorf("CONNECT: %q %v", line, err)
	}
	for { // the rest of the CONNECT response head
		l, err := r.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		if l == "\r\n" {
			break
		}
	}
	return c, r, nil
}

func tunnels(proxy, target, host string, seconds float64, workers int) {
	var done, errors int64
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				c, r, err := open(proxy, target)
				if err != nil {
					atomic.AddInt64(&errors, 1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host)
				body, err := io.ReadAll(r)
				c.Close()
				if err != nil || !strings.Contains(string(body), " 200 ") {
					atomic.AddInt64(&errors, 1)
					continue
				}
				atomic.AddInt64(&done, 1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("tunnels_per_s=%.1f errors=%d\n", float64(done)/seconds, errors)
}

func bulk(proxy, target, host, path string, seconds float64) {
	c, r, err := open(proxy, target)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
	buf := make([]byte, 256*1024)
	start := time.Now()
	deadline := start.Add(time.Duration(seconds * float64(time.Second)))
	var total int64
	for time.Now().Before(deadline) {
		n, err := r.Read(buf)
		total += int64(n)
		if err != nil {
			break
		}
	}
	fmt.Printf("bytes_per_s=%.0f\n", float64(total)/time.Since(start).Seconds())
}

func idle(proxy, target string, count int, seconds float64) {
	var conns []net.Conn
	for i := 0; i < count; i++ {
		c, _, err := open(proxy, target)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	fmt.Printf("open=%d\n", len(conns))
	os.Stdout.Sync()
	time.Sleep(time.Duration(seconds * float64(time.Second)))
	for _, c := range conns {
		c.Close()
	}
}

func main() {
	f := func(i int) float64 { v, _ := strconv.ParseFloat(os.Args[i], 64); return v }
	switch os.Args[1] {
	case "tunnels":
		tunnels(os.Args[2], os.Args[3], os.Args[4], f(5), int(f(6)))
	case "bulk":
		bulk(os.Args[2], os.Args[3], os.Args[4], os.Args[5], f(6))
	case "idle":
		idle(os.Args[2], os.Args[3], int(f(4)), f(5))
	}
}
