// tools/cluster_cli.h — `hmdb cluster ...`: the operator's commands for a running cluster
// (status, add-learner, promote, remove, transfer, digest, verify, schema, replace). See
// docs/cluster.md.
//
// Each command sends one RESP command of the cluster interface to --addr. A node that is
// not the leader answers `-MOVED <slot> HOST:PORT`; the tool follows that redirect (a bounded
// number of hops) so the operator may name any node. `-CLUSTERDOWN` (no leader known, e.g.
// during an election) is retried with a bounded backoff. The exit status is 0 on success
// and 1 with the server's error on stderr otherwise (2: bad usage).
//
// The parsing pieces are declared here so tests can check them without a server.
// Thread-safety: none needed; the tool is single-threaded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/text.h"
#include "core/record_sketch.h"

#include "net/resp_reply.h"

namespace hmdb::tools {

// Entry point of `hmdb cluster ...`. argv[0] is "cluster" (skipped). Returns the process
// exit status.
int cluster_main(int argc, char** argv);
// Entry point of `hmdb snapshot ...` (argv[0] is "snapshot"): sends SNAPSHOT to --addr
// HOST:PORT (as `hmdb cluster`; or --host and --port) over the same connection as the cluster
// verbs (--password, --tls --cacert --cert --key), prints the reply; exit 0, 1 with the
// server's error or why no reply came, 2 on bad usage.
int snapshot_main(int argc, char** argv);

// ---- bounds (named; docs/cluster.md cites them) ----

// Redirects followed for one command. Two suffice when the cluster is stable (any node ->
// leader); a few more absorb a leadership change in flight, and the bound stops a loop
// between two nodes that each name the other.
inline constexpr int kMaxRedirects = 5;
// -CLUSTERDOWN and "-ERR write lost in a leadership change; retry" are retried, waiting
// kFirstBackoffMs, doubling up to kMaxBackoffMs, until kRetryBudgetMs have passed. The
// budget covers several election timeouts (200-400 ms by default) so one failover is waited
// out, but an operator is not kept waiting for a cluster that has lost its majority.
inline constexpr int kFirstBackoffMs = 50;
inline constexpr int kMaxBackoffMs = 1000;
inline constexpr int kRetryBudgetMs = 10000;
// Time to establish a TCP connection (a dead host must not hang the tool for minutes).
inline constexpr int kConnectTimeoutMs = 2000;
// Default time to wait for one reply. The server itself answers a membership change or a
// leadership transfer within its own 10 s bound (server kClusterCommandTimeoutMs; a transfer
// the leader abandoned is answered after one election timeout), so this is a little longer.
inline constexpr int kDefaultReplyTimeoutMs = 15000;
// `status` and `digest` ask every member; each of those requests gets this long.
inline constexpr int kMemberQueryTimeoutMs = 2000;
// `digest` compares nodes only at the same applied index; while writes flow the indexes
// differ, so it asks again this many times, kDigestRetryMs apart, before giving up.
inline constexpr int kDigestAttempts = 20;
inline constexpr int kDigestRetryMs = 100;
// `verify` logs a digest mark and waits this long (by default; --wait-ms) for every member
// to apply it, asking each one every kVerifyPollMs. A member still behind then is reported
// as behind: a caught-up cluster applies a mark within a few milliseconds of committing it.
inline constexpr int kVerifyWaitMs = 10000;
inline constexpr int kVerifyPollMs = 20;
// `verify` names at most this many of the records a member holds differently (the rest are
// counted): enough to see the pattern, short enough to read.
inline constexpr size_t kVerifyRecordsShown = 10;
// `replace` waits at most this long (by default; --catch-up-timeout-s) for the new node to
// catch up and be promoted; a catch-up that needs longer is resumed by running it again.
inline constexpr int kReplaceCatchUpTimeoutS = 600;
// It asks the leader for the new node's progress every kReplacePollMs and prints a progress
// line every kReplaceReportMs.
inline constexpr int kReplacePollMs = 100;
inline constexpr int kReplaceReportMs = 1000;
// The leader refuses to promote a learner further behind than this (server
// kPromoteMaxLagEntries); `replace` waits for the catch-up to get there first.
inline constexpr uint64_t kReplacePromoteMaxLag = 1000;
// After removing the old node, how long `replace` watches for it to stop (it stops by
// itself once it learns of its removal; a node that is down already is not waited for).
inline constexpr int kReplaceStopWaitMs = 10000;
// `hmdb snapshot` waits this long (by default; --timeout-ms) for the server's reply: a
// snapshot of a large state is written at the disk's speed, so the bound is generous; it
// only keeps the tool from waiting forever on a server that never answers.
inline constexpr int kSnapshotTimeoutMs = 3600 * 1000;
// Largest reply the tool reads (INFO and CLUSTER MEMBERS are a few KiB).
inline constexpr size_t kMaxReplyBytes = 16u << 20;
// Default node to ask.
inline constexpr std::string_view kDefaultAddr = "127.0.0.1:7379";

// ---- addresses ----
// HostPort and parse_host_port are common/text.h's (an IPv4 address, an [IPv6] address or a
// host name, and a port 1..65535). The tool dials every address a name resolves to in turn.

// ---- replies ----

// A decoded reply (net/resp_reply.h: net::decode_reply reads it).
using Reply = net::RespReply;

// "MOVED <slot> HOST:PORT" (an error text without its '-'): the leader's client address.
bool parse_moved(std::string_view error_text, HostPort* leader);
// Errors worth retrying after a pause: the command was refused before it was proposed
// (-CLUSTERDOWN: no leader known; -TRYAGAIN: a leadership transfer is in progress; a busy
// leader), or it provably did not take effect because leadership changed.
bool is_retryable_error(std::string_view error_text);

// Sends argv to `start`, following -MOVED (at most kMaxRedirects per round) and retrying
// the retryable errors (is_retryable_error) with backoff within kRetryBudgetMs; a leader
// named by a redirect that cannot be reached sends the tool back to `start`. Each reply
// waits at most timeout_ms. *answered_by is the node whose reply is in *reply. False (with
// *error) when no reply could be had, or the outcome is unknown (timeout, closed
// connection: never retried); true with an error reply when the server refused.
bool send_to_leader(const HostPort& start, const std::vector<std::string>& argv, int timeout_ms, Reply* reply,
                    HostPort* answered_by, std::string* error);

// ---- command line ----

enum class ClusterVerb {
  kStatus,
  kMembers,
  kAddLearner,
  kPromote,
  kRemove,
  kTransfer,
  kDigest,
  kVerify,
  kSchema,
  kActivate,
  kReplace
};

struct ClusterArgs {
  ClusterVerb verb = ClusterVerb::kStatus;
  HostPort addr;  // the node to ask first
  uint64_t id = 0;
  HostPort client_addr;  // add-learner
  HostPort peer_addr;    // add-learner
  int timeout_ms = kDefaultReplyTimeoutMs;
  bool local = false;  // digest: only the node at --addr
  uint32_t version = 0;  // schema activate
  int wait_ms = kVerifyWaitMs;  // verify, replace
  uint64_t old_id = 0;          // replace: the member replaced (id: the new node)
  int catch_up_timeout_s = kReplaceCatchUpTimeoutS;  // replace
};

// Parses argv[1..argc) (argv[0] is "cluster"). Returns -1 when the arguments are good, else
// the exit status to return (0 after --help, 2 on bad usage), having printed the message.
int parse_cluster_args(int argc, char** argv, ClusterArgs* out);

// `hmdb snapshot`'s arguments: the server, from --addr HOST:PORT (the form `hmdb cluster`
// takes) or from --host and --port (either may be left at its default; not with --addr), and
// how long to wait for the reply.
struct SnapshotArgs {
  HostPort server;
  int timeout_ms = kSnapshotTimeoutMs;
};
// Parses argv[1..argc) (argv[0] is "snapshot") as parse_cluster_args does: -1 when the
// arguments are good, else the exit status (0 after --help, 2 on bad usage), message printed.
int parse_snapshot_args(int argc, char** argv, SnapshotArgs* out);

// One CLUSTER MEMBERS line: "<id> <client addr> <peer addr> <voter|learner>[ leader][ myself]"
// (an address is "?" while the answering node does not know it).
struct Member {
  uint64_t id = 0;
  std::string client_addr;
  std::string peer_addr;
  bool voter = false;
  bool leader = false;
  bool myself = false;  // the node that answered
};
// Parses the bulk text of CLUSTER MEMBERS. False (with *error) on a malformed line.
bool parse_members(std::string_view text, std::vector<Member>* out, std::string* error);

// INFO text ("key:value" lines; '#' headers and blank lines skipped): the value of `key`,
// or empty.
std::string info_field(std::string_view info, std::string_view key);

// CLUSTER DIGEST's reply, "<applied index> <hex digest> <schema version>" (an hmdb from
// before versions leaves the version out: *version is then 0).
bool parse_digest(const Reply& reply, uint64_t* index, std::string* digest, uint32_t* version);

// One member's answer to CLUSTER DIGEST AT <index> (docs/cluster.md, "Verifying").
struct MarkRow {
  enum class State { kDigest, kPending, kNone, kFailed, kError };
  State state = State::kError;
  std::string error;       // kError: why there is no answer
  uint64_t applied = 0;    // kPending, kNone, kFailed: the member's applied index (kPending at
                           // or past the mark: it is hashing its state there)
  uint64_t oldest_kept = 0;  // kNone: the oldest mark it keeps (0: none)
  std::string digest;      // kDigest: the digest, in hex
  uint32_t hashed_at = 0;  // kDigest: the schema version it hashed the app's state at
  uint32_t active = 0;     // kDigest: the active schema version at the mark
  uint32_t oldest = 0, newest = 0;  // kDigest: the schema versions its binary reads
};
// Parses the reply: "<index> <digest> <hashed at> <active> <oldest>..<newest>", "pending
// <applied>", "none <applied> <oldest kept>" or "failed <applied>"; an error reply is kError
// with its text.
// False if the reply is none of these (or names another index).
bool parse_mark_reply(const Reply& reply, uint64_t index, MarkRow* out);
// What `verify` concludes from every member's answer for the mark at `index`.
struct MarkVerdict {
  bool identical = false;          // every member hashed the same state at the active version
  uint32_t version = 0;            // the active schema version at the mark (identical: compared at it)
  std::vector<std::string> lines;  // one per member that is not part of an identical answer, and why
  // Each member whose digest differs from the largest group's, with a member of that group
  // (indexes into members): whose records to compare.
  std::vector<std::pair<size_t, size_t>> differs;
};
MarkVerdict compare_marks(uint64_t index, const std::vector<Member>& members, const std::vector<MarkRow>& rows);

// The reply to CLUSTER DIGEST AT <index> RECORDS: "records <hex>" is a sketch (true, *has
// set), "records none" none (true, *has unset: the app lists no records); anything else
// (an older server's usage error, no digest there) false with *error.
bool parse_records_reply(const Reply& reply, core::RecordSketch* out, bool* has, std::string* error);
// Where `who`'s records differ from `ref`'s (core::compare_sketches), for verify: the
// differing buckets and the first `shown` records, one line each, and how many more.
std::vector<std::string> record_lines(const std::string& who, const std::string& ref,
                                      const core::SketchComparison& c, size_t shown);

// The reply to CLUSTER DIGEST AT <index> USERS: "users <hex>" (the replicated ACL users'
// digest at the mark: true, *users set), "users none" (no ACL change logged there: true,
// *users empty); anything else false with *error (an older server's usage error, a mark it
// does not keep).
bool parse_users_reply(const Reply& reply, std::string* users, std::string* error);
// What verify concludes about the ACL users at a mark, from each member's answer (empty
// users: none logged; a member with an error is not compared, and said so).
struct UsersRow {
  bool known = false;
  std::string users;  // known: the digest in hex, or empty for none logged
  std::string error;  // !known: why
};
struct UsersVerdict {
  bool identical = true;           // every member that answered holds the same users
  bool replicated = false;         // ... and they are replicated users (not each node's file)
  std::vector<std::string> lines;  // why not identical, and the members not compared
};
UsersVerdict compare_users(const std::vector<Member>& members, const std::vector<UsersRow>& rows);

// A member's schema versions as its INFO server section gives them.
struct SchemaView {
  bool known = false;  // it answered
  std::string error;   // why not
  uint32_t oldest = 0, newest = 0;  // the versions its binary reads
  uint32_t active = 0;              // the active version it applied (0: not said, an older hmdb)
  // Where it stopped applying (INFO schema_blocked_at_index, _version; 0: it did not).
  uint64_t blocked_index = 0;
  uint32_t blocked_version = 0;
};
// One line on a member that stopped applying at a schema version it does not read ("" if
// it did not): for `status` and `schema`.
std::string blocked_text(uint64_t id, const SchemaView& v);
// From INFO server text (schema_version, schema_version_oldest, schema_version_active).
SchemaView schema_view_of(std::string_view info);
// Why `version` cannot be activated, one line per member in the way (empty: nothing is):
// a member that did not answer (every one must be asked), or whose binary does not read
// `version` (a voter would be left blocked at the activation, and so would a learner).
std::vector<std::string> activation_obstacles(const std::vector<Member>& members, const std::vector<SchemaView>& views,
                                              uint32_t version);
// Where an upgrade stands (docs/cluster.md, "Upgrading a cluster"), one line, or "" when no
// member's binary reads a version above the active one: the newest version any member reads
// (T), how many members read it and which do not yet, and that the gate (`schema activate
// T`) is not committed, so the upgrade can still be abandoned.
std::string upgrade_summary(const std::vector<Member>& members, const std::vector<SchemaView>& views);

// ---- replace (docs/cluster.md, "Replacing a node") ----

// What `replace OLD NEW` does next, judged from the membership alone, so that a run that was
// interrupted anywhere resumes where it stopped.
enum class ReplaceStep {
  kAddLearner,  // NEW is not a member: add it as a learner
  kCatchUp,     // NEW is a learner: wait for its catch-up, verify, promote it
  kTransfer,    // NEW votes and OLD leads: hand leadership to NEW
  kRemove,      // NEW votes, OLD is a member and does not lead: remove OLD
  kDone,        // NEW votes and OLD is gone
  kRefused      // the membership does not fit the command (*why says how)
};
ReplaceStep plan_replace(const std::vector<Member>& members, uint64_t old_id, uint64_t new_id,
                         const std::string& new_client, std::string* why);
std::string_view replace_step_name(ReplaceStep step);

// What the leader says of the new node's catch-up at one moment (its INFO replication peer
// line, docs/cluster.md).
struct CatchUpSample {
  uint64_t ms = 0;          // when (monotonic)
  uint64_t match = 0;       // the highest index the node is known to hold
  uint64_t last_index = 0;  // the leader's last index
  uint64_t bytes_sent = 0;  // bytes the leader wrote to it so far (0: an older leader does not say)
  bool connected = true;
  uint64_t snapshot_acked = 0, snapshot_total = 0;  // a snapshot being streamed (0, 0: none)
};
// One progress line: entries behind, bytes sent and the rates since `first`, time left.
std::string catch_up_line(uint64_t node, const CatchUpSample& first, const CatchUpSample& now);
// "12.3 MiB", "512 B": bytes for a person.
std::string human_bytes(uint64_t bytes);

// `status`'s explanation of a membership a replace may have left (empty: nothing to say):
// one line per learner (how far behind, `lag` from the leader's peer lines; "" if unknown)
// and one for an even number of voters, saying what the verbs would do from there.
std::vector<std::string> membership_notes(const std::vector<Member>& members,
                                          const std::vector<std::string>& lag);

}  // namespace hmdb::tools
