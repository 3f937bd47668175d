// server/options.h — what `hmdb serve` can be told, with the defaults and bounds in one place.
//
// docs/operations.md documents every field; keep the two in step.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/status.h"
#include "common/text.h"
#include "core/pubsub.h"
#include "net/resp.h"
#include "net/tls.h"

namespace hmdb::server {

enum class Durability : uint8_t {
  kAlways,    // reply after fdatasync of the entry (group commit); loses nothing acknowledged
  kPeriodic,  // reply after write(2); fdatasync every fsync_interval_ms in the disk thread
  kNone,      // no log: reply after apply; a restart keeps only the last snapshot
};

const char* durability_name(Durability d);
bool parse_durability(const std::string& s, Durability* out);

// Whether a group-commit round holds the next one for the clients it answered (`always` mode;
// server/group_hold_policy.h, docs/operations.md "Group commit").
enum class GroupHoldMode : uint8_t {
  kAuto,  // hold while the disk is the slower side (a single node; a cluster's leader: kOn)
  kOn,    // always hold
  kOff,   // never hold: the next round starts as soon as the disk is free
};

// How a snapshot is written (--snapshot-method; docs/operations.md, "Snapshots"):
enum class SnapshotMethod : uint8_t {
  kFork,    // a fork()ed child writes it (the fork copies the page tables in one loop turn)
  kSlices,  // the loop encodes it in slices (the app's SaveProducer) and a thread writes them;
            // an app without one, or a snapshot in an older layout, is forked (logged once)
};

const char* snapshot_method_name(SnapshotMethod m);
bool parse_snapshot_method(const std::string& s, SnapshotMethod* out);

const char* group_hold_mode_name(GroupHoldMode m);
bool parse_group_hold_mode(const std::string& s, GroupHoldMode* out);

struct ServerOptions {
  std::string bind = "127.0.0.1";
  uint16_t port = 7379;  // 0: pick an ephemeral port (tests); the chosen one is logged
  std::string dir = "./hmdb-data";
  Durability durability = Durability::kAlways;
  GroupHoldMode group_commit_hold = GroupHoldMode::kAuto;
  uint64_t fsync_interval_ms = 1000;
  uint64_t snapshot_log_bytes = 256ull << 20;  // take a snapshot once the log grew this much
  SnapshotMethod snapshot_method = SnapshotMethod::kFork;
  // Applied, durable log entries kept in memory for followers that fall behind (not in mode
  // none, which trims its own log)
  // (raft::Config::log_memory_bytes; 0: no bound). docs/decisions.md, "The log a node holds
  // in memory is bounded": 32 MiB is 3.4 bytes per key at 10 M keys.
  uint64_t log_memory_bytes = 32ull << 20;
  uint64_t max_bulk_bytes = net::kDefaultMaxBulkBytes;
  uint64_t max_clients = 10000;
  uint16_t metrics_port = 0;  // Prometheus endpoint on bind:metrics_port (server/metrics.h); 0: off
  // Live updates (docs/subscriptions.md): events kept for resuming subscribers, and the
  // unsent bytes past which a subscriber's subscriptions end.
  uint64_t events_retain_bytes = core::kEventsRetainBytesDefault;
  uint64_t subscriber_output_bytes = core::kSubscriberOutputBytesDefault;
  // Redis' notify-keyspace-events letters at start (CONFIG SET changes it while running).
  std::string notify_keyspace_events;
  // The default user's password (docs/security.md); empty: none. The node keeps only its
  // SHA-256 digest (server/auth.h) and, in a cluster, this text for its own forwarding links
  // to the leader, which authenticate as any client does; it is cleared from the options the
  // node keeps, so INFO, CONFIG GET and the log cannot show it.
  std::string requirepass;
  // An ACL file (docs/security.md): its `user` lines are the node's users at start, ACL LOAD
  // reads it again, ACL SAVE writes the users to it. Empty: none (ACL LOAD/SAVE refused).
  std::string aclfile;
  // The nodes' shared secret for their forwarding links (docs/security.md, "In a cluster"):
  // with it a link logs in as the reserved user `hmdb-forwarder`, allowed CLUSTER FORWARDER
  // only, whom no client can log in as without the secret; without it, as `default` with
  // requirepass. Cleared from the options the node keeps, like requirepass.
  std::string cluster_secret;
  // Redis' protected mode: refuse to start bound to an address other than loopback with no
  // password set (docs/security.md). `--protected-mode no` is the explicit opt-out.
  bool protected_mode = true;
  // What `hmdb serve` put in effect for the heap's transparent huge pages (--huge-pages no|yes;
  // server/huge_pages.h): "yes", "no" or "no (<why>)". INFO's huge_pages.
  std::string huge_pages = "no";
  // The CPUs `hmdb serve --cpus` restricted the process to before it started any thread
  // (server/cpu_affinity.h), in a list's shortest form ("0-1"); empty: --cpus not given, the
  // affinity it was started with is unchanged. CONFIG GET hmdb-cpus.
  std::string cpus;

  // ---- TLS (docs/security.md "TLS") ----
  // A TLS port for clients (--tls-port; 0: an ephemeral one, logged). With it, `--port 0`
  // means no plaintext port at all (Redis' convention); without it, `--port 0` is an
  // ephemeral plaintext port as before.
  bool tls_listen = false;
  uint16_t tls_port = 0;
  bool plain_listen = true;
  net::TlsFiles tls_files;  // the node's certificate and key, and the CA that signs clients' and peers'
  net::TlsAuthClients tls_auth_clients = net::TlsAuthClients::kYes;  // Redis' default
  // Peers speak TLS with mutual authentication (each presents tls_files' certificate, which
  // the other checks against the CA); forwarding links dial the leader's TLS port, which is
  // then the client address this node advertises.
  bool tls_replication = false;

  // ---- cluster (docs/cluster.md) ----
  uint64_t node_id = 1;
  std::string peer_addr;  // "host:port" to listen on for peers; empty: a single node
  // The first voters, id -> addresses; used only while the data dir holds no membership.
  struct MemberAddr {
    std::string client;  // host:port
    std::string peer;    // host:port
    bool operator==(const MemberAddr&) const = default;
  };
  std::map<uint64_t, MemberAddr> initial_cluster;
  bool join = false;  // start with no membership: wait to be added by the leader
  std::string cluster_id = "hmdb";
  uint64_t election_timeout_ms = 200;  // randomized in [T, 2T)
  uint64_t heartbeat_ms = 50;
  // Tests only (a hidden flag): each step of a leader's snapshot's background install (the
  // file's sync and verification; its decoding) does not finish before the loop sent this
  // many messages to peers during it, so a test shows that the loop answers its peers
  // meanwhile, whatever the machine's speed. 0: off.
  uint64_t test_snapshot_load_hold_messages = 0;
  // Tests only (a hidden flag): elements per slice of a sliced reply (core::kSliceElements
  // when 0), so that a test makes a reply of many slices from a few hundred thousand keys.
  uint64_t test_slice_elements = 0;
  // Tests only (a hidden flag): how long a sliced reply waits for a client that does not read
  // (core::kSliceReaderWaitMs when 0), so that a test can keep one in progress while it looks.
  uint64_t test_slice_reader_wait_ms = 0;
  // Tests only (a hidden flag): elements per slice of a sliced write (core::kWriteSliceElements
  // when 0), so that a test keeps a SUNIONSTORE of a few tens of thousands of members half
  // applied for many turns while it looks.
  uint64_t test_write_slice_elements = 0;
  // Tests only (a hidden flag): the turn's apply budget in us (kTurnApplyBudgetUs when 0): 1
  // makes every turn stop applying after 16 commands (a system test's many resumed entries), a
  // huge value turns the bound off (an A/B of the same binary).
  uint64_t test_turn_apply_budget_us = 0;
  // Tests and benchmarks only (a hidden flag): a single node's disk rounds all run on the disk
  // thread, as a cluster's do, not on the loop when it would wait for them (disk_thread.h,
  // "Rounds on the loop"): tests of the thread's path on one node, and an A/B of the same binary.
  bool test_disk_rounds_on_thread = false;
  // Tests only (a hidden flag): the fdatasync average up to which rounds run on the loop
  // (kLoopRoundSyncAvgMaxUs when 0), so that a test sees them on a slow or busy disk too.
  uint64_t test_loop_round_sync_avg_max_us = 0;
  // Tests only (a hidden flag): the planted bug core::Replica::Options::PlantedBugs::
  // skip_yielded_command (an entry the turn's apply budget stopped resumes after the command
  // it stopped before, which is never applied nor answered), which tests/system/
  // apply_budget_test.py --plant must catch.
  bool test_plant_skip_yielded_command = false;
  // Tests only (a hidden flag): the planted bug core::Replica::Options::PlantedBugs::
  // unchanged_ignores_pending (a write its app says changes nothing is answered from the
  // applied state while writes are pending), which tests/system/unchanged_write_test.py
  // --plant must catch.
  bool test_plant_unchanged_ignores_pending = false;
  // Tests only (a hidden flag): the planted bug core::Replica::Options::PlantedBugs::
  // transfer_waits_for_deadline (a leadership transfer the consensus core abandoned is
  // answered only at kClusterCommandTimeoutMs), which tests/system/cluster_test.py --case
  // abandoned --plant must catch.
  bool test_plant_transfer_waits_for_deadline = false;
  // Tests only (a hidden flag): the planted bug core::Replica::Options::PlantedBugs::
  // transfer_ignores_lost_leadership (a leadership transfer whose leader lost its leadership
  // to another node than the target is answered only at kClusterCommandTimeoutMs), which
  // tests/system/cluster_test.py --case lostlead --plant must catch.
  bool test_plant_transfer_ignores_lost_leadership = false;
  // Tests only (hidden flags) of --snapshot-method slices (server/snapshot.cc):
  // the bytes a slice asks the producer for (kSnapshotSliceBytes when 0), so that a small
  // state makes many slices;
  uint64_t test_snapshot_slice_bytes = 0;
  // one slice per loop turn, and after the first only in a turn whose applying advanced the
  // applied index since the last one: a test's writes then come between the slices, and the
  // snapshot stays in progress, whatever the machine's speed, until the test writes;
  bool test_snapshot_slice_per_write = false;
  // the snapshot file's appends fail with EIO after this many (storage::FaultInjectionEnv;
  // 0: never), a write error of the snapshot file;
  uint64_t test_snapshot_fail_write_after = 0;
  // the encoded slices' bytes queued for the writer at most (kSnapshotQueueBytesMax when 0), so
  // that a small state fills the queue;
  uint64_t test_snapshot_queue_bytes = 0;
  // a FIFO the first snapshot-in-slices writer of the process opens and reads to its end right
  // after creating its temp file: it waits there until the test opens and closes the FIFO (an
  // abandon then meets a busy writer). Empty: none;
  std::string test_snapshot_writer_gate;
  // planted bugs that tests/server's sliced-snapshot cases must catch: "drop-slice" (the writer
  // leaves out the app's second slice), "keep-temp" (an abandoned snapshot leaves its temp
  // file), "no-catch" (a producer's exception is not caught: the node dies), "no-reuse" (the
  // writer gives no slice buffer back: the loop allocates each), "join-on-abandon" (the loop
  // waits for an abandoned snapshot's writer). Empty: none.
  std::string test_plant_slices_bug;

  bool clustered() const { return !peer_addr.empty(); }
  std::string client_addr() const { return format_host_port(bind, port); }
  bool tls_configured() const { return tls_listen || tls_replication; }
};

// "1=chost:cport@phost:pport,2=..." -> map. Checks every address's form (common/text.h:
// an IPv4 address, an [IPv6] address or a host name, and a port).
Status parse_initial_cluster(const std::string& text, std::map<uint64_t, ServerOptions::MemberAddr>* out);
// Checks the cluster flags together (node id in the initial cluster, --join exclusive...).
Status validate_cluster_options(const ServerOptions& o);
// Protected mode: refuses a client address (--bind, resolved) outside loopback when no
// password is set and protected mode is on; the message says how to configure it.
Status check_protected_mode(const ServerOptions& o);

// ---- bounds of the shell (named; see docs/operations.md "Limits") ----

// Housekeeping period (expiry, stalled clients).
inline constexpr uint64_t kTickMs = 100;
// Consensus tick: election timeouts and heartbeats are counted in these.
inline constexpr uint64_t kRaftTickMs = 10;
// A write proposed to a leader that loses its leadership before the entry commits waits
// for the new leader's log to decide; a membership change or leadership transfer that has
// not finished after this long is answered with an error (its outcome: see CLUSTER MEMBERS).
// A transfer is answered sooner in the usual outcomes: +OK once the target leads, an
// "abandoned" error once the consensus core drops it while this node leads on (after one
// election timeout), or once another node than the target is known to lead (this node
// lost its leadership to it); the bound is the last resort, for a leader that lost its
// leadership meanwhile and knows no leader for that long.
inline constexpr uint64_t kClusterCommandTimeoutMs = 10000;
// Replication flow control: appends in flight per follower (each at most raft's
// max_append_bytes, 1 MiB), and the peer transport's queue per peer. The queue holds two
// windows; beyond it messages are dropped (raft retransmits), so a peer whose connection
// is stuck costs at most this much memory and framing work instead of filling 256 MiB.
inline constexpr uint32_t kRaftMaxInflightAppends = 16;
inline constexpr uint64_t kPeerQueueBytesPerPeer = 32ull << 20;
// A learner may be promoted only once it is at most this many entries behind the leader.
inline constexpr uint64_t kPromoteMaxLagEntries = 1000;
// A client whose unsent replies exceed this is disconnected (it does not read its replies).
inline constexpr uint64_t kClientOutputLimitBytes = 1ull << 30;
// A client's output buffer drops the bytes already sent once they reach this much and at
// least the unsent bytes (Node::flush_session): a reader that keeps up only partly would
// otherwise keep a big reply's every byte, its growth copying tens of MB in one turn.
inline constexpr uint64_t kOutputCompactBytes = 1ull << 20;
// A client whose unsent replies exceed this is not served further commands until it reads
// (back-pressure per client; pipelining clients simply wait).
inline constexpr uint64_t kClientOutputPauseBytes = 4ull << 20;
// A client that is paused on its output (above) and has not taken a single byte for this
// long is disconnected: it does not read its replies at all.
inline constexpr uint64_t kClientOutputStallMs = 60 * 1000;
// Commands a client may have queued behind an unfinished write before the server stops
// parsing its input (its bytes stay in the kernel / read buffer).
inline constexpr uint64_t kClientPendingCommandsMax = 100000;
// Read at most this much from one client per loop turn, so one fast client cannot starve
// the others.
inline constexpr uint64_t kReadBytesPerTurnMax = 1ull << 20;
// Read at most this much from all clients together in one loop turn (the last read may go
// over by one read(2), kReadChunkBytes or a big bulk's part), so that many pipelining
// clients cannot make one turn of thousands of commands: 50 clients at pipeline 64 sent
// ~3,200 SETs of 400 B a turn, 10-67 ms of the loop's CPU at load 10 (bench/README.md).
// The clients left unread when it is reached are read first in the next turn.
inline constexpr uint64_t kTurnReadBytesMax = 256ull << 10;
// A turn stops applying once it has run this long (wall clock, from the turn's start): the
// entry being applied stops before its next command and is resumed in the next turn
// (core::Replica::Options::apply_budget_spent, asked every kApplyBudgetCheckCommands
// commands). What a turn reads is bounded (kTurnReadBytesMax: ~600 SETs of 400 B, ~0.8 ms to
// apply), but not what applying it costs: growing to 20 M keys of 400 B, the same ~600 SETs
// took 70 ms of the loop's CPU in a turn where the VM's memory accesses became ~100x slower
// (each node a rehash moved cost 22 us instead of 0.2), decaying over ~0.5 s (bench/README.md,
// "Long turns of the 20 M-key growth"). 8 ms leaves the rest of the 20 ms goal (issue 16 item
// 5) for the 15 commands after the budget is spent and the replies' sending.
inline constexpr uint64_t kTurnApplyBudgetUs = 8000;
// --snapshot-method slices (server/snapshot.cc): a loop turn calls the app's SaveProducer
// until it has spent this long in it (the loop's clock, read after each call), so a turn holds
// at most this much encoding plus one slice. 4 ms beside the apply budget's 8 ms keeps a turn
// under issue 16's 20 ms.
inline constexpr uint64_t kTurnSnapshotBudgetUs = 4000;
// ... asking it for this many bytes a call (SliceBudget::bytes), so the budget is overrun by
// at most about one call. kv's small keys cost ~1.5 ms per 256 KiB on the reference VM (a
// cache miss or two per key; 300 k keys of 20 bytes, loaded machine): a turn of 4 ms plus one
// such call took 7.9 ms; 64 KiB is ~0.4 ms, and still a write(2) of a useful size for the writer.
inline constexpr uint64_t kSnapshotSliceBytes = 64ull << 10;
// Encoded slices waiting for the writer thread, at most this many bytes: when reached the loop
// stops slicing (and may sleep) until the writer has written half of them (it wakes the loop),
// so a disk slower than the encoding holds back the encoding, not memory.
inline constexpr uint64_t kSnapshotQueueBytesMax = 32ull << 20;
// The writer thread starts writeback of the temp file (sync_file_range) every this many bytes
// written, as the fork's child does every 50 ms: the final fdatasync does not flush gigabytes
// at once while the log's fdatasync waits behind it.
inline constexpr uint64_t kSnapshotWritebackBytes = 32ull << 20;
// Size of one read(2) call (grown to a bulk's size while a large bulk is arriving).
inline constexpr uint64_t kReadChunkBytes = 64ull << 10;
// glibc malloc: allocations below this come from the heap (reused when freed) rather than
// from a fresh mmap each time (32 MiB is glibc's largest allowed value); freed heap memory
// is returned to the kernel only above kMallocTrimThresholdBytes. See Node::start.
inline constexpr uint64_t kMallocMmapThresholdBytes = 32ull << 20;
inline constexpr uint64_t kMallocTrimThresholdBytes = 512ull << 20;
// Bytes queued for the disk thread; beyond this, same back-pressure.
inline constexpr uint64_t kDiskQueueBytesMax = 64ull << 20;
// Group commit (`always`, server/disk_thread.h "Holding the next round"): after a round that
// made client writes durable, the next round waits at most this long (and, on a single node,
// at most the last fdatasync's duration: cluster_hold_bounds; counted from when the loop sent
// those clients' replies) for their next
// writes, and starts as soon as this percentage of that many new writes has been proposed. (At
// 75 % the last quarter missed the round and formed a second cohort that the next hold, which
// waits for its own round's clients, kept apart: at pipeline 1, 50 clients, 32 writes per
// fdatasync at 75 % against 47 at 100 %.)
inline constexpr uint64_t kGroupHoldMaxUs = 500;
inline constexpr uint64_t kGroupHoldReturnPercent = 100;
// GroupHoldMode::kAuto (server/group_hold_policy.h): the fdatasync's and the cohort's return
// times are averaged with weight 1/2^kGroupHoldAverageShift for the newest (1/8: a few rounds'
// memory, so one slow fdatasync does not flip the decision); after kGroupHoldProbeRounds
// rounds in a row that held nothing, one holds to measure the cohort's return again (1 in 64
// rounds: at most ~1.5 % of rounds pay a hold the disk did not need).
inline constexpr unsigned kGroupHoldAverageShift = 3;
inline constexpr uint64_t kGroupHoldProbeRounds = 64;
// The hold's span counts from when the loop sent the answered clients their replies; a hold
// whose replies are still unsent this long after its sync's end (a very long loop turn) ends
// anyway.
inline constexpr uint64_t kGroupHoldUnsentMaxUs = 5000;
// Every loop turn that proposes some of the awaited writes moves the hold's deadline to now
// plus its span, but never later than this long after the replies were sent: a cohort that
// keeps arriving is waited for (redis-benchmark's 50 clients come back one by one ~17 µs
// apart, ~850 µs for all), a slow or idle one costs at most this much latency.
inline constexpr uint64_t kGroupHoldExtendMaxUs = 2000;
// A single node's loop that has nothing to do while the disk thread makes its writes durable
// (`always`) sleeps until the disk's acknowledgement, a signal or a stop request, not until the
// next client event, for at most this long; the turn after it reads every client that became
// ready meanwhile (Node::wait_for_disk_ack). Clients that write during the fdatasync could only
// join the next round anyway, and that round starts with the ack. Woken for each of them instead
// (redis-benchmark's 50 clients at pipeline 1 write one by one while the other cohort syncs),
// the loop slept and woke 0.5 times per request where Redis' loop does 0.15 (bench/README.md,
// issue 16 item 3). The bound is how long a command that needs no disk (a GET) may wait behind
// a slow fdatasync before the loop looks (Redis' loop: the whole fsync); 1 ms measured 0.14
// context switches per request on the loop, 20 ms 0.09.
inline constexpr uint64_t kAckWaitMaxUs = 2000;
// A single node in `always` mode runs a group-commit round on its loop, instead of waking the
// disk thread for it, when the loop would otherwise wait for that round's acknowledgement
// (disk_thread.h, "Rounds on the loop") — while the fdatasync takes at most this long on
// average (GroupHoldPolicy's average, weight 1/8). The loop cannot look at its clients during
// the fdatasync; beyond this a GET would wait longer than kAckWaitMaxUs lets it, and the rounds
// go back to the thread.
inline constexpr uint64_t kLoopRoundSyncAvgMaxUs = kAckWaitMaxUs;
// Connections accepted per loop turn.
inline constexpr int kAcceptsPerTurnMax = 1000;
// epoll events handled per epoll_wait call.
inline constexpr int kEpollEventsMax = 1024;
// On SIGTERM: how long to keep trying to deliver the last replies to slow clients.
inline constexpr uint64_t kShutdownFlushMs = 5000;
// An event-loop turn that works at least this long is counted (INFO stats slow_turns) and
// logged, at most once per kSlowTurnLogIntervalMs: a stalled leader sends no heartbeats.
inline constexpr uint64_t kSlowTurnMs = 100;
inline constexpr uint64_t kSlowTurnLogIntervalMs = 10000;
// A turn that works at least this long (issue 16's bound on a turn) is a long turn: INFO
// stats counts it with the loop thread's CPU time during it (long_turns, long_turns_ms,
// long_turns_cpu_ms, long_turns_on_cpu), which tells our work from the machine's
// (preemption, a VM's stolen time).
inline constexpr uint64_t kLongTurnMs = 20;
// The loop thread's CPU time is read (getrusage(RUSAGE_THREAD), a system call: 1.2-1.5 us
// on the reference VM, clock_gettime(CLOCK_THREAD_CPUTIME_ID) 2.0-2.2 us) only after a turn
// that worked at least this long: at most ~0.15 % of the loop's time, nothing for the short
// turns of a lightly loaded node. A long turn's CPU time is the difference from the reading
// before, less the work time of the turns between (an upper bound of their CPU time): a
// lower bound, exact when the turn before was read too, as in a busy loop.
inline constexpr uint64_t kTurnCpuReadMinUs = 1000;
// A long turn spent at least this share of its time on the CPU (percent) counts as our
// work (long_turns_on_cpu); the rest of a turn is time the thread waited for a CPU.
inline constexpr uint64_t kLongTurnOnCpuPercent = 80;
// Recovery prints a progress line this often while replaying.
inline constexpr uint64_t kRecoveryProgressMs = 1000;
// Failed AUTH / HELLO AUTH attempts are all counted (INFO acl_access_denied_auth), but a
// log line about them is written at most once per this period (with the number since the
// last line), so that a client trying passwords in a loop cannot flood the log.
inline constexpr uint64_t kAuthFailureLogIntervalMs = 10000;
// TLS connections refused (a failed handshake: no certificate, one the CA did not sign, an
// expired one, not TLS at all) are all counted (INFO tls_handshake_failures); at most this
// many log lines about them per kTlsFailureLogWindowMs, then one saying how many were not logged.
inline constexpr uint64_t kTlsFailureLogWindowMs = 10000;
inline constexpr uint64_t kTlsFailureLogLinesPerWindow = 5;
// ACL LOG keeps the newest refusals (commands, keys, channels and logins refused), at most
// this many, as Redis' acllog-max-len (default 128).
inline constexpr size_t kAclLogEntriesMax = 128;
// A refusal like one already logged (same reason, context, object and user) within this
// time counts on that entry instead of adding one, as in Redis.
inline constexpr uint64_t kAclLogGroupingMs = 60000;

}  // namespace hmdb::server
