// bench/etcd/etcd-load.go — a small etcd v3 load client for bench/cluster_bench.py.
//
// Why it exists: Debian ships no etcd load tool (upstream's `benchmark` is not packaged), and
// etcdctl in a loop measures process start-up, not etcd. This client uses Debian's clientv3
// (package golang-etcd-server-dev) and builds offline with GO111MODULE=off and
// GOPATH=/usr/share/gocode (see bench/etcd/build.sh).
//
// Two modes:
//
//	put:      N clients (each its own gRPC connection, like hmdb-bench's connections) do
//	          random-key PUTs of small values for a fixed time, one request in flight per
//	          client; prints one CSV line: ops/s, p50, p99, p99.9, max (ms), errors, count.
//	failover: clients PUT in a loop over all endpoints until stdin closes, and answer
//	          "mark <ns>" lines on stdin with the first success sent after the mark (see
//	          runFailover), so the caller can time kill -9 of the leader -> first success.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"golang.org/x/sys/unix"
)

// Per-request timeout: longer than any healthy put under load, short enough that a request
// sent to a dead leader is abandoned and retried quickly in failover mode.
const requestTimeout = 2 * time.Second

// Failover mode: timeout per put, so that a put stuck on the killed leader is abandoned and
// the next one tried soon (etcd's own default election timeout is 1 s). The same bound as
// hmdb-bench's --request-timeout-ms in bench/cluster_bench.py.
const failoverRequestTimeout = 250 * time.Millisecond

func main() {
	mode := flag.String("mode", "put", "put | failover")
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma list host:port (put mode: the leader only)")
	clients := flag.Int("clients", 50, "concurrent clients (one connection each)")
	seconds := flag.Float64("seconds", 5, "run time (put mode)")
	keyspace := flag.Int("keyspace", 1000000, "random keys from [0, keyspace)")
	valueSize := flag.Int("value-size", 3, "value bytes")
	flag.Parse()

	eps := strings.Split(*endpoints, ",")
	if *mode == "put" {
		runPut(eps, *clients, *seconds, *keyspace, *valueSize)
	} else if *mode == "failover" {
		runFailover(eps, *clients, *keyspace, *valueSize)
	} else {
		fmt.Fprintln(os.Stderr, "unknown --mode", *mode)
		os.Exit(2)
	}
}

func newClient(eps []string) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd-load: connect:", err)
		os.Exit(1)
	}
	return c
}

func runPut(eps []string, clients int, seconds float64, keyspace, valueSize int) {
	value := strings.Repeat("x", valueSize)
	conns := make([]*clientv3.Client, clients)
	for i := range conns {
		conns[i] = newClient(eps)
	}
	lat := make([][]time.Duration, clients)
	var errors int64
	var firstErr atomic.Value
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(i) + 1))
			samples := make([]time.Duration, 0, 1<<16)
			for time.Now().Before(deadline) {
				key := fmt.Sprintf("key:%012d", r.Intn(keyspace))
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
				_, err := conns[i].Put(ctx, key, value)
				cancel()
				if err != nil {
					atomic.AddInt64(&errors, 1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				samples = append(samples, time.Since(t0))
			}
			lat[i] = samples
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	var all []time.Duration
	for _, s := range lat {
		all = append(all, s...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p / 100 * float64(len(all)))
		if i >= len(all) {
			i = len(all) - 1
		}
		return float64(all[i].Microseconds()) / 1000
	}
	max := 0.0
	if len(all) > 0 {
		max = float64(all[len(all)-1].Microseconds()) / 1000
	}
	fmt.Println("test,rps,p50_latency_ms,p99_latency_ms,p999_latency_ms,max_latency_ms,errors,requests,seconds")
	fmt.Printf("PUT,%.2f,%.3f,%.3f,%.3f,%.3f,%d,%d,%.3f\n", float64(len(all))/elapsed, pct(50), pct(99), pct(99.9), max, errors, len(all), elapsed)
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "etcd-load: first error:", e)
	}
	for _, c := range conns {
		c.Close()
	}
}

// monoNs is CLOCK_MONOTONIC in ns: the clock Python's time.monotonic_ns() and hmdb-bench
// read, so that marks from bench/cluster_bench.py compare with our send times.
func monoNs() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return uint64(ts.Sec)*1e9 + uint64(ts.Nsec)
}

// Successes remembered for marks that arrive after them (as in hmdb-bench's follow mode).
const successRing = 8192

type success struct{ sent, done uint64 }

// Failover mode: every client has its own clientv3.Client over all endpoints (the client
// picks and retries endpoints itself, which is etcd's normal client behaviour; followers
// forward puts to the leader). stdin takes "mark <CLOCK_MONOTONIC ns>" lines; for each,
// stdout gets "first <mark> <sent> <done> ?": the earliest success sent at or after the
// mark. EOF on stdin ends the run; a summary goes to stderr.
func runFailover(eps []string, clients, keyspace, valueSize int) {
	value := strings.Repeat("x", valueSize)
	var mu sync.Mutex // guards ring, count, pending and stdout
	ring := make([]success, successRing)
	count := 0
	var pending []uint64
	var ok, failed int64
	report := func(mark uint64, s success) {
		fmt.Printf("first %d %d %d ?\n", mark, s.sent, s.done)
		os.Stdout.Sync()
	}
	record := func(s success) {
		mu.Lock()
		defer mu.Unlock()
		ring[count%successRing] = s
		count++
		kept := pending[:0]
		for _, m := range pending {
			if s.sent >= m {
				report(m, s)
			} else {
				kept = append(kept, m)
			}
		}
		pending = kept
	}
	mark := func(m uint64) {
		mu.Lock()
		defer mu.Unlock()
		n := count
		if n > successRing {
			n = successRing
		}
		var best *success
		for i := 0; i < n; i++ {
			if ring[i].sent >= m && (best == nil || ring[i].done < best.done) {
				best = &ring[i]
			}
		}
		if best != nil {
			report(m, *best)
		} else {
			pending = append(pending, m)
		}
	}
	var stop int32
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			var m uint64
			if _, err := fmt.Sscanf(scanner.Text(), "mark %d", &m); err == nil {
				mark(m)
			}
		}
		atomic.StoreInt32(&stop, 1)
	}()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := newClient(eps)
			defer c.Close()
			r := rand.New(rand.NewSource(int64(i) + 7))
			for atomic.LoadInt32(&stop) == 0 {
				key := fmt.Sprintf("key:%012d", r.Intn(keyspace))
				sent := monoNs()
				ctx, cancel := context.WithTimeout(context.Background(), failoverRequestTimeout)
				_, err := c.Put(ctx, key, value)
				cancel()
				if err != nil {
					atomic.AddInt64(&failed, 1)
					continue
				}
				atomic.AddInt64(&ok, 1)
				record(success{sent, monoNs()})
			}
		}(i)
	}
	wg.Wait()
	fmt.Fprintf(os.Stderr, "etcd-load: failover mode: %d puts ok, %d failed or timed out\n", ok, failed)
}
