// bench/pubsub/pubsub-load.go — the one load client of bench/pubsub_bench.py: writers and
// subscribers of hmdb, Redis and etcd, so that differences in the figures are the servers'.
//
// Why one Go program: etcd is reached through its own client (Debian's clientv3, gRPC), and
// the writer's reply and the subscriber's event must be timed on one clock (CLOCK_MONOTONIC;
// the writers run in a child process of this program, --role writers, so that their replies
// are not read late behind the subscribers' goroutines, and the two share their tables of
// send and reply times through a shared mapping). RESP (hmdb, Redis) is spoken by a small hand-written client here (one TCP
// connection per writer and per subscriber, a 64 KiB buffered reader, one clock read per
// read() that brought bytes, no allocation per message). Built offline against Debian's
// packages by bench/pubsub/build.sh.
//
// What a run does (one JSON line on stdout):
//  1. connects --subscribers subscribers, round-robin over --sub-addrs (RESP: SUBSCRIBE to
//     the channel, or to __keyevent@0__:set for --op set; etcd: a watch of the key on a
//     clientv3 client of its own, i.e. its own gRPC connection, or one shared by
//     --watchers-per-client watchers of the same member) and waits for every
//     confirmation;
//  2. --writers writers, each on its own connection to --writer-addr (the leader / master),
//     write for --seconds with one request in flight: PUBLISH <channel> "<w>:<seq>" (resp,
//     --op publish), SET "b:<w>:<seq>" x (resp, --op set: the keyevent notification is the
//     event) or PUT <channel> "<w>:<seq>" (etcd). --rate R paces them to R writes/s in all
//     (0: as fast as the replies come);
//  3. the writer records when it read each reply; a subscriber that reads the event of
//     (w, seq) records now - reply time (an event read before its reply counts 0 and is
//     counted as "early"). Each subscriber checks that it sees every writer's seq in order:
//     a seq beyond the next is a gap (lost events), one at or below the last a duplicate;
//  4. after the writers stop, it waits up to --drain for every subscriber to have every
//     acknowledged write's event; what is still missing then counts as lost.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"go.etcd.io/etcd/clientv3"
	"golang.org/x/sys/unix"
)

// Writes one writer may make in a run: the size of its reply-time table (8 bytes each).
const maxSeqPerWriter = 1 << 20

// How long a connection, a subscription's confirmation or one write may take before the run
// fails: far above any healthy figure, so only a dead or wedged server trips it.
const ioTimeout = 10 * time.Second

// Reader buffer per RESP connection.
const readBufferBytes = 64 << 10

// now is CLOCK_MONOTONIC in ns: the writers' process and the subscribers' read the same clock.
func now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Sec*1e9 + ts.Nsec
}

// ---------------------------------------------------------------------------------------
// Latency histogram: log-linear buckets, 64 per power of two (< 1.6 % error); percentiles
// report a bucket's upper bound, so they never under-state.

const subBuckets = 64

type hist struct {
	counts [64 * subBuckets]uint64
	n      uint64
	max    int64
}

func bucketOf(v int64) int {
	if v < subBuckets {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 7 // v >> e is in [64, 128)
	return (e+1)*subBuckets + int((uint64(v)>>uint(e))-subBuckets)
}

func bucketUpper(b int) int64 {
	if b < subBuckets {
		return int64(b)
	}
	e := b/subBuckets - 1
	m := int64(b%subBuckets + subBuckets)
	return ((m + 1) << uint(e)) - 1
}

func (h *hist) add(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

func (h *hist) pct(p float64) float64 { // ms
	if h.n == 0 {
		return 0
	}
	target := uint64(p / 100 * float64(h.n))
	if target >= h.n {
		target = h.n - 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > target {
			v := bucketUpper(i)
			if v > h.max {
				v = h.max
			}
			return float64(v) / 1e6
		}
	}
	return float64(h.max) / 1e6
}

// ---------------------------------------------------------------------------------------
// Shared state of a run.

type run struct {
	writers   int
	replyAt   [][]int64 // [writer][seq]: when the writer read the reply (ns since base), 0 = not yet
	sentAt    [][]int64 // [writer][seq]: when the writer wrote the request
	acked     []int64   // [writer]: last acknowledged seq
	writeLat  []hist    // [writer]: request written -> reply read
	inOrder   int64     // events received in order, all subscribers (atomic)
	failed    int32
	errMu     sync.Mutex
	firstErr  string
	errorsN   int64 // error replies to writes
	firstRErr string
}

func (r *run) fail(err error) {
	r.errMu.Lock()
	if r.firstErr == "" {
		r.firstErr = err.Error()
	}
	r.errMu.Unlock()
	atomic.StoreInt32(&r.failed, 1)
}

// One subscriber's tally.
type sub struct {
	last  []int64 // [writer]: last seq seen
	lat   hist    // reply read -> event read
	e2e   hist    // request written -> event read
	gaps  int64   // events skipped (a seq beyond the next)
	dups  int64   // a seq at or below the last one seen
	early int64   // read before the writer had its reply
	bad   int64   // payloads that did not parse
}

// event handles the payload "<w>:<seq>" (or "b:<w>:<seq>") read at time t.
func (r *run) event(s *sub, payload []byte, t int64) {
	if i := bytes.IndexByte(payload, ':'); i >= 0 && bytes.Count(payload, []byte{':'}) == 2 {
		payload = payload[i+1:]
	}
	i := bytes.IndexByte(payload, ':')
	if i < 0 {
		s.bad++
		return
	}
	w, err1 := strconv.Atoi(string(payload[:i]))
	seq, err2 := strconv.ParseInt(string(payload[i+1:]), 10, 64)
	if err1 != nil || err2 != nil || w < 0 || w >= r.writers || seq <= 0 || seq >= maxSeqPerWriter {
		s.bad++
		return
	}
	last := s.last[w]
	switch {
	case seq == last+1:
		atomic.AddInt64(&r.inOrder, 1)
	case seq > last+1:
		s.gaps += seq - last - 1
		atomic.AddInt64(&r.inOrder, 1)
	default:
		s.dups++
		return
	}
	s.last[w] = seq
	if sent := atomic.LoadInt64(&r.sentAt[w][seq]); sent != 0 {
		s.e2e.add(t - sent)
	}
	at := atomic.LoadInt64(&r.replyAt[w][seq])
	if at == 0 {
		s.early++
		s.lat.add(0)
		return
	}
	s.lat.add(t - at)
}

// ---------------------------------------------------------------------------------------
// RESP

func respCommand(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

func dial(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, err
	}
	c.(*net.TCPConn).SetNoDelay(true)
	return c, nil
}

// readLine returns one RESP line without its \r\n (valid until the next read).
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("malformed RESP line %q", line)
	}
	return line[:len(line)-2], nil
}

// readBulk reads "$<n>\r\n<n bytes>\r\n" and returns the bytes (copied into dst).
func readBulk(br *bufio.Reader, dst []byte) ([]byte, error) {
	line, err := readLine(br)
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[0] != '$' {
		return nil, fmt.Errorf("expected a bulk string, got %q", line)
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("bad bulk length %q", line)
	}
	dst = dst[:0]
	for len(dst) < n+2 {
		if _, err := br.Peek(1); err != nil { // waits for at least one byte
			return nil, err
		}
		k := br.Buffered()
		if k > n+2-len(dst) {
			k = n + 2 - len(dst)
		}
		p, _ := br.Peek(k)
		dst = append(dst, p...)
		br.Discard(k)
	}
	if dst[n] != '\r' || dst[n+1] != '\n' {
		return nil, errors.New("bulk string not followed by CRLF")
	}
	return dst[:n], nil
}

// respSubscriber: SUBSCRIBE, wait for the confirmation, then read messages until the
// connection is closed by the end of the run.
func respSubscriber(r *run, s *sub, addr, channel string, ready *sync.WaitGroup, conns chan<- net.Conn) {
	readyDone := false
	defer func() {
		if !readyDone {
			ready.Done()
		}
	}()
	c, err := dial(addr)
	if err != nil {
		r.fail(fmt.Errorf("subscriber connect %s: %w", addr, err))
		return
	}
	conns <- c
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write(respCommand("SUBSCRIBE", channel)); err != nil {
		r.fail(err)
		return
	}
	br := bufio.NewReaderSize(c, readBufferBytes)
	var scratch [3][]byte
	for i := range scratch {
		scratch[i] = make([]byte, 0, 256)
	}
	// readFrame reads an array (RESP2 '*' or RESP3 '>') of up to 4 bulk strings or integers;
	// element i lands in scratch[min(i, 2)], so a message's payload is in scratch[2].
	readFrame := func() (int, error) {
		line, err := readLine(br)
		if err != nil {
			return 0, err
		}
		if len(line) < 2 || (line[0] != '*' && line[0] != '>') {
			return 0, fmt.Errorf("%s: expected a push frame, got %q", addr, line)
		}
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n < 1 || n > 4 {
			return 0, fmt.Errorf("%s: unexpected frame size %q", addr, line)
		}
		for i := 0; i < n; i++ {
			k := i
			if k > 2 {
				k = 2
			}
			if b, _ := br.Peek(1); len(b) == 1 && b[0] == ':' {
				num, err := readLine(br)
				if err != nil {
					return 0, err
				}
				scratch[k] = append(scratch[k][:0], num[1:]...)
				continue
			}
			b, err := readBulk(br, scratch[k])
			if err != nil {
				return 0, err
			}
			scratch[k] = b
		}
		return n, nil
	}
	if _, err := readFrame(); err != nil {
		r.fail(fmt.Errorf("%s: subscribe: %w", addr, err))
		return
	}
	if string(scratch[0]) != "subscribe" {
		r.fail(fmt.Errorf("%s: subscribe answered %q", addr, scratch[0]))
		return
	}
	c.SetDeadline(time.Time{})
	readyDone = true
	ready.Done()
	var t int64
	for {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				return // closed at the end of the run
			}
			t = now()
		}
		scratch[0] = scratch[0][:0]
		if _, err := readFrame(); err != nil {
			if atomic.LoadInt32(&r.failed) == 0 && !errors.Is(err, net.ErrClosed) {
				r.fail(fmt.Errorf("%s: subscriber read: %w", addr, err))
			}
			return
		}
		if string(scratch[0]) != "message" {
			s.bad++
			continue
		}
		r.event(s, scratch[2], t)
	}
}

// respWriter: one request in flight; PUBLISH or SET until the deadline.
func respWriter(r *run, w int, addr, op, channel string, deadline int64, interval int64, done *sync.WaitGroup) {
	defer done.Done()
	c, err := dial(addr)
	if err != nil {
		r.fail(fmt.Errorf("writer connect %s: %w", addr, err))
		return
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	var req []byte
	start := now()
	for seq := int64(1); seq < maxSeqPerWriter; seq++ {
		if interval > 0 {
			due := start + (seq-1)*interval
			if d := due - now(); d > 0 {
				time.Sleep(time.Duration(d))
			}
		}
		if now() >= deadline || atomic.LoadInt32(&r.failed) != 0 {
			return
		}
		id := strconv.Itoa(w) + ":" + strconv.FormatInt(seq, 10)
		if op == "set" {
			req = respCommand("SET", "b:"+id, "x")
		} else {
			req = respCommand("PUBLISH", channel, id)
		}
		c.SetDeadline(time.Now().Add(ioTimeout))
		t0 := now()
		atomic.StoreInt64(&r.sentAt[w][seq], t0)
		if _, err := c.Write(req); err != nil {
			r.fail(fmt.Errorf("writer %s: %w", addr, err))
			return
		}
		line, err := readLine(br)
		if err != nil {
			r.fail(fmt.Errorf("writer %s: %w", addr, err))
			return
		}
		t := now()
		if len(line) > 0 && line[0] == '-' {
			atomic.AddInt64(&r.errorsN, 1)
			r.errMu.Lock()
			if r.firstRErr == "" {
				r.firstRErr = string(line)
			}
			r.errMu.Unlock()
			// An error reply: no event expected. The seq is burnt; subscribers see a gap
			// unless it is reused, so reuse it.
			seq--
			continue
		}
		atomic.StoreInt64(&r.replyAt[w][seq], t)
		atomic.StoreInt64(&r.acked[w], seq)
		r.writeLat[w].add(t - t0)
	}
}

// ---------------------------------------------------------------------------------------
// etcd

func etcdClient(addr string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: ioTimeout})
}

// etcdSubscriber watches key on client(), which is its own clientv3 client (one gRPC
// connection) or one shared with other watchers (--watchers-per-client: their watches share
// one gRPC stream, as clientv3 multiplexes the watches of a client).
func etcdSubscriber(r *run, s *sub, addr, key string, ready *sync.WaitGroup, ctx context.Context,
	client func() (*clientv3.Client, error)) {
	readyDone := false
	defer func() {
		if !readyDone {
			ready.Done()
		}
	}()
	c, err := client()
	if err != nil {
		r.fail(fmt.Errorf("watcher connect %s: %w", addr, err))
		return
	}
	wch := c.Watch(ctx, key, clientv3.WithCreatedNotify())
	first, ok := <-wch
	if !ok || !first.Created {
		r.fail(fmt.Errorf("%s: watch not created (%v)", addr, first.Err()))
		return
	}
	readyDone = true
	ready.Done()
	for resp := range wch {
		t := now()
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				r.fail(fmt.Errorf("%s: watch: %w", addr, err))
			}
			return
		}
		for _, ev := range resp.Events {
			r.event(s, ev.Kv.Value, t)
		}
	}
}

func etcdWriter(r *run, w int, addr, key string, deadline int64, interval int64, done *sync.WaitGroup) {
	defer done.Done()
	c, err := etcdClient(addr)
	if err != nil {
		r.fail(fmt.Errorf("writer connect %s: %w", addr, err))
		return
	}
	defer c.Close()
	start := now()
	for seq := int64(1); seq < maxSeqPerWriter; seq++ {
		if interval > 0 {
			due := start + (seq-1)*interval
			if d := due - now(); d > 0 {
				time.Sleep(time.Duration(d))
			}
		}
		if now() >= deadline || atomic.LoadInt32(&r.failed) != 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		t0 := now()
		atomic.StoreInt64(&r.sentAt[w][seq], t0)
		_, err := c.Put(ctx, key, strconv.Itoa(w)+":"+strconv.FormatInt(seq, 10))
		cancel()
		t := now()
		if err != nil {
			r.fail(fmt.Errorf("writer %s: put: %w", addr, err))
			return
		}
		atomic.StoreInt64(&r.replyAt[w][seq], t)
		atomic.StoreInt64(&r.acked[w], seq)
		r.writeLat[w].add(t - t0)
	}
}

// ---------------------------------------------------------------------------------------

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

type result struct {
	Proto         string  `json:"proto"`
	Op            string  `json:"op"`
	Writers       int     `json:"writers"`
	Subscribers   int     `json:"subscribers"`
	Rate          float64 `json:"rate"`
	Seconds       float64 `json:"seconds"`
	Writes        int64   `json:"writes"`
	WritesPerS    float64 `json:"writes_per_s"`
	WriteP50      float64 `json:"write_p50_ms"`
	WriteP99      float64 `json:"write_p99_ms"`
	Expected      int64   `json:"expected_events"`
	Delivered     int64   `json:"delivered"`
	DeliveredPerS float64 `json:"delivered_per_s"`
	Lost          int64   `json:"lost"`
	Dups          int64   `json:"duplicates"`
	Early         int64   `json:"early"`
	Bad           int64   `json:"bad_payloads"`
	P50           float64 `json:"p50_ms"`
	P99           float64 `json:"p99_ms"`
	P999          float64 `json:"p999_ms"`
	Max           float64 `json:"max_ms"`
	E2EP50        float64 `json:"e2e_p50_ms"`
	E2EP99        float64 `json:"e2e_p99_ms"`
	DrainS        float64 `json:"drain_s"`
	SetupS        float64 `json:"setup_s"`
	ClientCPU     float64 `json:"client_cpu_s"`
	ErrorReplies  int64   `json:"error_replies"`
	FirstReplyErr string  `json:"first_error_reply,omitempty"`
	Error         string  `json:"error,omitempty"`
}

// The tables the writers fill and the subscribers read, shared between the two processes:
// sentAt[w][seq], replyAt[w][seq], acked[w] (int64 words, written atomically).
func sharedTables(f *os.File, writers int, create bool) (*run, error) {
	words := 2*writers*maxSeqPerWriter + writers
	if create {
		if err := f.Truncate(int64(words) * 8); err != nil {
			return nil, err
		}
	}
	b, err := unix.Mmap(int(f.Fd()), 0, words*8, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	all := unsafe.Slice((*int64)(unsafe.Pointer(&b[0])), words)
	r := &run{writers: writers, replyAt: make([][]int64, writers), sentAt: make([][]int64, writers),
		writeLat: make([]hist, writers)}
	for w := 0; w < writers; w++ {
		r.sentAt[w] = all[w*maxSeqPerWriter : (w+1)*maxSeqPerWriter]
		r.replyAt[w] = all[(writers+w)*maxSeqPerWriter : (writers+w+1)*maxSeqPerWriter]
	}
	r.acked = all[2*writers*maxSeqPerWriter:]
	return r, nil
}

// What the writers' process reports to the subscribers' process.
type writersResult struct {
	Elapsed       float64 `json:"elapsed"`
	WriteP50      float64 `json:"write_p50_ms"`
	WriteP99      float64 `json:"write_p99_ms"`
	ErrorReplies  int64   `json:"error_replies"`
	FirstReplyErr string  `json:"first_error_reply"`
	Error         string  `json:"error"`
}

// runWriters is the writers' process (--role writers): the tables on fd 3; it starts when a
// line arrives on stdin and prints a writersResult.
func runWriters(proto, op, writerAddr, channel string, writers int, seconds, rate float64) {
	r, err := sharedTables(os.NewFile(3, "tables"), writers, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pubsub-load writers:", err)
		os.Exit(1)
	}
	if line, _ := bufio.NewReader(os.Stdin).ReadString('\n'); line != "go\n" {
		return // the subscribers' setup failed: nothing to write
	}
	start := now()
	deadline := start + int64(seconds*1e9)
	var interval int64
	if rate > 0 {
		interval = int64(float64(writers) / rate * 1e9)
	}
	var writing sync.WaitGroup
	for w := 0; w < writers; w++ {
		writing.Add(1)
		if proto == "etcd" {
			go etcdWriter(r, w, writerAddr, channel, deadline, interval, &writing)
		} else {
			go respWriter(r, w, writerAddr, op, channel, deadline, interval, &writing)
		}
		if interval > 0 { // spread the paced writers over the interval
			time.Sleep(time.Duration(interval / int64(writers)))
		}
	}
	writing.Wait()
	res := writersResult{Elapsed: float64(now()-start) / 1e9, ErrorReplies: r.errorsN, FirstReplyErr: r.firstRErr}
	wl := hist{}
	for w := range r.writeLat {
		wl.merge(&r.writeLat[w])
	}
	res.WriteP50, res.WriteP99 = wl.pct(50), wl.pct(99)
	if atomic.LoadInt32(&r.failed) != 0 {
		res.Error = r.firstErr
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func main() {
	proto := flag.String("proto", "resp", "resp (hmdb, Redis) | etcd")
	op := flag.String("op", "publish", "resp: publish | set (SET + keyevent notification)")
	writerAddr := flag.String("writer-addr", "127.0.0.1:6379", "where writers connect (the leader / master)")
	subAddrs := flag.String("sub-addrs", "127.0.0.1:6379", "comma list: subscribers round-robin over them")
	writers := flag.Int("writers", 4, "writer connections, one request in flight each")
	subscribers := flag.Int("subscribers", 1, "subscriber connections")
	seconds := flag.Float64("seconds", 3, "writing time")
	rate := flag.Float64("rate", 0, "writes/s in all (0: as fast as replies come)")
	channel := flag.String("channel", "bench", "channel (etcd: key)")
	drain := flag.Duration("drain", 10*time.Second, "how long to wait for the last events after the writes")
	perClient := flag.Int("watchers-per-client", 1, "etcd: watchers sharing one clientv3 client (one gRPC connection and stream)")
	role := flag.String("role", "", "internal: 'writers' is the writers' process this program starts")
	flag.Parse()

	if *writers < 1 || *writers > 256 || *subscribers < 0 || *seconds <= 0 || *perClient < 1 {
		fmt.Fprintln(os.Stderr, "pubsub-load: bad --writers, --subscribers or --seconds")
		os.Exit(2)
	}
	if *proto != "resp" && *proto != "etcd" || *op != "publish" && *op != "set" {
		fmt.Fprintln(os.Stderr, "pubsub-load: bad --proto or --op")
		os.Exit(2)
	}
	if *role == "writers" {
		runWriters(*proto, *op, *writerAddr, *channel, *writers, *seconds, *rate)
		return
	}
	// The writers run in a process of their own: in this one, the Go scheduler would queue a
	// writer's goroutine behind the subscribers' (1,000 of them woken by each event) and the
	// write's reply would be read late (measured: write p50 8.5 ms in-process against 3.5 ms
	// from another process, 1,000 subscribers). The tables are shared memory.
	tablesFile, err := os.CreateTemp("/dev/shm", "pubsub-load-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pubsub-load:", err)
		os.Exit(1)
	}
	os.Remove(tablesFile.Name()) // the two mappings keep it
	r, err := sharedTables(tablesFile, *writers, true)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pubsub-load: shared tables:", err)
		os.Exit(1)
	}
	child := exec.Command(os.Args[0], append(os.Args[1:], "--role", "writers")...)
	child.ExtraFiles = []*os.File{tablesFile}
	child.Stderr = os.Stderr
	childIn, _ := child.StdinPipe()
	childOut, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "pubsub-load: writers' process:", err)
		os.Exit(1)
	}
	addrs := strings.Split(*subAddrs, ",")
	subs := make([]*sub, *subscribers)
	var ready sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	conns := make(chan net.Conn, *subscribers)
	clients := make(chan *clientv3.Client, *subscribers)
	var clientsMu sync.Mutex
	shared := map[string]*clientv3.Client{}
	// The client of subscriber i on addr: its own, or the one of its group of --watchers-per-client.
	clientFor := func(i int, addr string) func() (*clientv3.Client, error) {
		key := fmt.Sprintf("%s/%d", addr, i/len(addrs)/(*perClient))
		return func() (*clientv3.Client, error) {
			clientsMu.Lock()
			defer clientsMu.Unlock()
			if c, ok := shared[key]; ok {
				return c, nil
			}
			c, err := etcdClient(addr)
			if err == nil {
				shared[key] = c
				clients <- c
			}
			return c, err
		}
	}
	subChannel := *channel
	if *op == "set" {
		subChannel = "__keyevent@0__:set"
	}
	setupStart := time.Now()
	var subsDone sync.WaitGroup
	for i := range subs {
		subs[i] = &sub{last: make([]int64, *writers)}
		ready.Add(1)
		subsDone.Add(1)
		addr := addrs[i%len(addrs)]
		client := clientFor(i, addr)
		go func(s *sub) {
			defer subsDone.Done()
			if *proto == "etcd" {
				etcdSubscriber(r, s, addr, *channel, &ready, ctx, client)
			} else {
				respSubscriber(r, s, addr, subChannel, &ready, conns)
			}
		}(subs[i])
		if i%50 == 49 { // do not flood the listen backlogs
			time.Sleep(5 * time.Millisecond)
		}
	}
	ready.Wait()
	setup := time.Since(setupStart).Seconds()

	cpu0 := cpuSeconds()
	var wres writersResult
	if atomic.LoadInt32(&r.failed) == 0 {
		fmt.Fprintln(childIn, "go")
	}
	childIn.Close() // a failed setup: the writers' process ends without writing
	outBytes, _ := io.ReadAll(childOut)
	if err := child.Wait(); err != nil && atomic.LoadInt32(&r.failed) == 0 {
		r.fail(fmt.Errorf("writers' process: %v", err))
	} else if len(outBytes) > 0 {
		if err := json.Unmarshal(outBytes, &wres); err != nil {
			r.fail(fmt.Errorf("writers' process: %v", err))
		} else if wres.Error != "" {
			r.fail(errors.New(wres.Error))
		}
	}
	elapsed := wres.Elapsed
	if elapsed <= 0 {
		elapsed = 1e-9
	}
	var writes int64
	for _, a := range r.acked {
		writes += a
	}
	expected := writes * int64(*subscribers)
	drainStart := now()
	drainEnd := drainStart + int64(*drain)
	for atomic.LoadInt64(&r.inOrder) < expected && now() < drainEnd && atomic.LoadInt32(&r.failed) == 0 {
		time.Sleep(2 * time.Millisecond)
	}
	drained := float64(now()-drainStart) / 1e9
	cpu := cpuSeconds() - cpu0
	if child.ProcessState != nil { // the writers' CPU too: the client is both processes
		cpu += child.ProcessState.UserTime().Seconds() + child.ProcessState.SystemTime().Seconds()
	}
	// End the subscribers: close their connections, then collect their tallies.
	failedBefore := atomic.LoadInt32(&r.failed)
	atomic.StoreInt32(&r.failed, 1) // reads failing from here on are ours
	cancel()
	close(conns)
	for c := range conns {
		c.Close()
	}
	close(clients)
	for c := range clients {
		c.Close()
	}
	subsDone.Wait()

	res := result{Proto: *proto, Op: *op, Writers: *writers, Subscribers: *subscribers, Rate: *rate,
		Seconds: elapsed, Writes: writes, WritesPerS: float64(writes) / elapsed, Expected: expected,
		DrainS: drained, SetupS: setup, ClientCPU: cpu, ErrorReplies: wres.ErrorReplies, FirstReplyErr: wres.FirstReplyErr}
	if *proto == "etcd" {
		res.Op = "put"
	}
	res.WriteP50, res.WriteP99 = wres.WriteP50, wres.WriteP99
	all, e2e := hist{}, hist{}
	for _, s := range subs {
		all.merge(&s.lat)
		e2e.merge(&s.e2e)
		res.Dups += s.dups
		res.Early += s.early
		res.Bad += s.bad
		res.Lost += s.gaps
		for w := 0; w < *writers; w++ {
			if miss := r.acked[w] - s.last[w]; miss > 0 {
				res.Lost += miss
			}
		}
	}
	res.Delivered = int64(all.n)
	res.DeliveredPerS = float64(all.n) / (elapsed + drained) // what came during the drain too
	res.P50, res.P99, res.P999, res.Max = all.pct(50), all.pct(99), all.pct(99.9), float64(all.max)/1e6
	res.E2EP50, res.E2EP99 = e2e.pct(50), e2e.pct(99)
	if failedBefore != 0 {
		res.Error = r.firstErr
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if failedBefore != 0 {
		fmt.Fprintln(os.Stderr, "pubsub-load:", r.firstErr)
		os.Exit(1)
	}
}
