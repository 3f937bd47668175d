// tools/cluster_cli.cc — `hmdb cluster ...` (see cluster_cli.h and docs/cluster.md): a small
// blocking RESP client, redirect and retry handling, and the formatting of `status` and
// `digest`. One request at a time; nothing here needs to be fast.
#include "tools/cluster_cli.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <thread>

#include "common/clock.h"
#include "hmdb/text.h"
#include "net/resp_reply.h"
#include "net/tls.h"

namespace hmdb::tools {

namespace {

std::string encode_command(const std::vector<std::string>& argv) {
  std::string s = "*" + std::to_string(argv.size()) + "\r\n";
  for (const auto& a : argv) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

std::string join_words(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// The default user's password (--password or HMDB_PASSWORD; docs/security.md): every
// connection sends AUTH with it first when set. Set once by cluster_main.
std::string& cluster_password() {
  static std::string password;
  return password;
}

// --tls (--cacert, --cert, --key): every connection speaks TLS, checking the node's
// certificate against the CA (net/tls.h). Set once by parse_cluster_args; null: plaintext.
std::shared_ptr<net::TlsContext>& cluster_tls() {
  static std::shared_ptr<net::TlsContext> tls;
  return tls;
}

// A blocking connection with a connect timeout and a per-reply timeout (with TLS the
// timeouts bound the handshake's reads and writes too: the socket's SO_RCVTIMEO/SNDTIMEO).
class Connection {
 public:
  Connection() = default;
  ~Connection() {
    tls_.reset();
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool open(const HostPort& to, int reply_timeout_ms, std::string* error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(to.port);
    const int rc = ::getaddrinfo(to.host.c_str(), service.c_str(), &hints, &found);
    if (rc != 0 || found == nullptr) {
      *error = "cannot resolve " + to.host + ": " + ::gai_strerror(rc);
      return false;
    }
    std::string why = "no address";
    for (addrinfo* a = found; a != nullptr && fd_ < 0; a = a->ai_next) fd_ = connect_with_timeout(a, &why);
    ::freeaddrinfo(found);
    if (fd_ < 0) {
      *error = "cannot connect to " + to.to_string() + ": " + why;
      return false;
    }
    timeval tv{reply_timeout_ms / 1000, static_cast<suseconds_t>(reply_timeout_ms % 1000) * 1000};
    const int one = 1;
    if (::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
      *error = std::string("socket options: ") + std::strerror(errno);
      return false;
    }
    peer_ = to;
    if (cluster_tls()) {
      tls_.reset(cluster_tls()->connect_fd(fd_));
      if (!tls_) {
        *error = "TLS: cannot make a connection state";
        return false;
      }
    }
    if (!cluster_password().empty()) {
      Reply r;
      if (!call({"AUTH", cluster_password()}, &r, error)) return false;
      if (r.is_error()) {
        *error = to.to_string() + " refused the password: " + r.text;
        return false;
      }
    }
    return true;
  }

  // Sends one command and reads its reply. False (with *error) when the connection failed,
  // timed out or the reply is not RESP: the command's outcome is then unknown.
  bool call(const std::vector<std::string>& argv, Reply* reply, std::string* error) {
    const std::string request = encode_command(argv);
    size_t sent = 0;
    while (sent < request.size()) {
      std::string tls_error;
      const ssize_t n = send_some(request.data() + sent, request.size() - sent, &tls_error);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        *error = "sending to " + peer_.to_string() + ": " +
                 (tls_error.empty() ? std::strerror(errno) + refused_hint() : tls_error);
        return false;
      }
      sent += static_cast<size_t>(n);
    }
    char chunk[16 * 1024];
    for (;;) {
      if (!buffer_.empty()) {
        const int64_t used = net::decode_reply(buffer_, reply);
        if (used < 0) {
          *error = "not a RESP reply from " + peer_.to_string();
          return false;
        }
        if (used > 0) {
          buffer_.erase(0, static_cast<size_t>(used));
          return true;
        }
      }
      if (buffer_.size() > kMaxReplyBytes) {
        *error = "reply from " + peer_.to_string() + " is larger than " + std::to_string(kMaxReplyBytes) + " bytes";
        return false;
      }
      std::string tls_error;
      const ssize_t n = recv_some(chunk, sizeof chunk, &tls_error);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        *error = "no reply from " + peer_.to_string() + " in time (outcome unknown)";
        return false;
      }
      if (n < 0 && errno == EPROTO) {
        *error = "TLS with " + peer_.to_string() + ": " + tls_error;
        return false;
      }
      if (n <= 0) {
        *error = peer_.to_string() + " closed the connection before replying (outcome unknown)" + refused_hint();
        return false;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  static int connect_with_timeout(const addrinfo* a, std::string* error) {
    const int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      *error = std::string("socket: ") + std::strerror(errno);
      return -1;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      do {
        rc = ::poll(&p, 1, kConnectTimeoutMs);
      } while (rc < 0 && errno == EINTR);
      if (rc == 0) {
        *error = "timed out after " + std::to_string(kConnectTimeoutMs) + " ms";
        ::close(fd);
        return -1;
      }
      int so_error = 0;
      socklen_t length = sizeof so_error;
      if (rc < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &length) != 0) so_error = errno;
      rc = so_error == 0 ? 0 : -1;
      errno = so_error;
    }
    if (rc != 0) {
      *error = std::strerror(errno);
      ::close(fd);
      return -1;
    }
    if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
      *error = std::string("fcntl: ") + std::strerror(errno);
      ::close(fd);
      return -1;
    }
    return fd;
  }

  // With TLS 1.3 a node refuses a client's certificate after the client's side of the
  // handshake is done, often with a plain close: what a closed connection may mean.
  std::string refused_hint() const {
    return tls_ ? "; over TLS a node that refuses this client's certificate closes the connection so: see its log"
                : "";
  }

  // recv(2)/send(2) on the blocking socket, through TLS with --tls (a timeout is EAGAIN).
  ssize_t recv_some(char* buf, size_t n, std::string* tls_error) {
    if (!tls_) return ::recv(fd_, buf, n, 0);
    net::TlsIo want;
    return net::io_recv(fd_, tls_.get(), buf, n, &want, tls_error);
  }
  ssize_t send_some(const char* buf, size_t n, std::string* tls_error) {
    if (!tls_) return ::send(fd_, buf, n, MSG_NOSIGNAL);
    net::TlsIo want;
    return net::io_send(fd_, tls_.get(), buf, n, &want, tls_error);
  }

  int fd_ = -1;
  net::TlsConnection tls_;
  HostPort peer_;
  std::string buffer_;
};

// One request to one node, no redirects: for the commands any node serves.
bool ask(const HostPort& node, const std::vector<std::string>& argv, int timeout_ms, Reply* reply,
         std::string* error) {
  Connection c;
  return c.open(node, timeout_ms, error) && c.call(argv, reply, error);
}

// Fields of an INFO replication reply that `status` shows, per node.
struct NodeView {
  bool reachable = false;
  std::string error;
  std::string role, term, leader_id, commit_index, applied_index, last_index;
  // On the leader: peer id -> "match=..,lag=..,state=.."
  std::map<uint64_t, std::map<std::string, std::string>> peers;
};

NodeView view_of(const HostPort& node) {
  NodeView v;
  Reply reply;
  if (!ask(node, {"INFO", "replication"}, kMemberQueryTimeoutMs, &reply, &v.error)) return v;
  if (reply.is_error() || reply.type != '$') {
    v.error = reply.is_error() ? reply.text : "unexpected INFO reply";
    return v;
  }
  v.reachable = true;
  const std::string& info = reply.text;
  v.role = info_field(info, "role");
  v.term = info_field(info, "term");
  v.leader_id = info_field(info, "leader_id");
  v.commit_index = info_field(info, "commit_index");
  v.applied_index = info_field(info, "applied_index");
  v.last_index = info_field(info, "last_index");
  // peer<ID>:addr=...,match=...,lag=...,state=...
  size_t at = 0;
  while (at < info.size()) {
    size_t eol = info.find('\n', at);
    if (eol == std::string::npos) eol = info.size();
    std::string_view line(info.data() + at, eol - at);
    at = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.substr(0, 4) != "peer") continue;
    const size_t colon = line.find(':');
    uint64_t id = 0;
    if (colon == std::string_view::npos || !parse_uint64(line.substr(4, colon - 4), &id)) continue;
    std::string_view rest = line.substr(colon + 1);
    auto& fields = v.peers[id];
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view pair = rest.substr(0, comma);
      const size_t eq = pair.find('=');
      if (eq != std::string_view::npos) fields[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return v;
}

bool fetch_members(const HostPort& node, int timeout_ms, std::vector<Member>* members, std::string* error) {
  Reply reply;
  if (!ask(node, {"CLUSTER", "MEMBERS"}, timeout_ms, &reply, error)) return false;
  if (reply.is_error()) {
    *error = node.to_string() + ": " + reply.text;
    return false;
  }
  if (reply.type != '$' && reply.type != '+') {
    *error = node.to_string() + ": unexpected reply to CLUSTER MEMBERS";
    return false;
  }
  if (!parse_members(reply.text, members, error)) return false;
  // The node that answered may not know its own client address (a single node shows "?"):
  // it is the one we reached.
  std::string ignored;
  HostPort hp;
  for (Member& m : *members)
    if (m.myself && !parse_host_port(m.client_addr, &hp, &ignored)) m.client_addr = node.to_string();
  return true;
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

std::vector<SchemaView> schema_views(const std::vector<Member>& members);  // below

int run_status(const ClusterArgs& args) {
  std::vector<Member> members;
  std::string error;
  if (!fetch_members(args.addr, args.timeout_ms, &members, &error)) {
    std::cerr << "hmdb cluster status: " << error << "\n";
    return 1;
  }
  std::vector<NodeView> views;
  const NodeView* leader_view = nullptr;
  const Member* leader = nullptr;
  views.reserve(members.size());
  for (const Member& m : members) {
    HostPort hp;
    if (parse_host_port(m.client_addr, &hp, &error)) {
      views.push_back(view_of(hp));
    } else {
      views.push_back(NodeView{});
      views.back().error = m.client_addr == "?" ? "its address is not known to " + args.addr.to_string() +
                                                      " (ask another node with --addr)"
                                                : error;
    }
  }
  for (size_t i = 0; i < members.size(); ++i) {
    if (views[i].role == "leader") {
      leader_view = &views[i];
      leader = &members[i];
    }
  }
  size_t voters = 0;
  for (const Member& m : members) voters += m.voter ? 1 : 0;
  std::printf("members (from %s): %zu voters, %zu learners; ", args.addr.to_string().c_str(), voters,
              members.size() - voters);
  if (leader != nullptr)
    std::printf("leader %llu at %s, term %s, commit index %s\n", static_cast<unsigned long long>(leader->id),
                leader->client_addr.c_str(), or_dash(leader_view->term).c_str(),
                or_dash(leader_view->commit_index).c_str());
  else
    std::printf("no leader\n");
  // LAG and LINK are the leader's view: entries the follower is behind, and whether the
  // leader's peer connection to it is up.
  std::printf("%-4s %-8s %-12s %-21s %-21s %-6s %-10s %-10s %-8s %s\n", "ID", "MEMBER", "ROLE", "CLIENT", "PEER",
              "TERM", "COMMIT", "APPLIED", "LAG", "LINK");
  for (size_t i = 0; i < members.size(); ++i) {
    const Member& m = members[i];
    const NodeView& v = views[i];
    std::string lag = "-", link = "-";
    if (leader_view != nullptr && &v != leader_view) {
      auto it = leader_view->peers.find(m.id);
      if (it != leader_view->peers.end()) {
        if (it->second.count("lag")) lag = it->second.at("lag");
        if (it->second.count("connected")) link = it->second.at("connected") == "1" ? "up" : "down";
      }
    }
    std::printf("%-4llu %-8s %-12s %-21s %-21s %-6s %-10s %-10s %-8s %s\n", static_cast<unsigned long long>(m.id),
                m.voter ? "voter" : "learner", v.reachable ? v.role.c_str() : "unreachable", m.client_addr.c_str(),
                m.peer_addr.c_str(), or_dash(v.term).c_str(), or_dash(v.commit_index).c_str(),
                or_dash(v.applied_index).c_str(), lag.c_str(), link.c_str());
  }
  for (size_t i = 0; i < members.size(); ++i)
    if (!views[i].reachable)
      std::printf("node %llu: %s\n", static_cast<unsigned long long>(members[i].id), views[i].error.c_str());
  // A member that stopped applying at a schema version it does not read (INFO server).
  const std::vector<SchemaView> schemas = schema_views(members);
  for (size_t i = 0; i < members.size(); ++i)
    if (const std::string b = blocked_text(members[i].id, schemas[i]); !b.empty()) std::printf("%s\n", b.c_str());
  // A learner, or an even number of voters, is what an unfinished replace leaves: said.
  std::vector<std::string> lags(members.size());
  for (size_t i = 0; i < members.size() && leader_view != nullptr; ++i) {
    auto it = leader_view->peers.find(members[i].id);
    if (it != leader_view->peers.end() && it->second.count("lag")) lags[i] = it->second.at("lag");
  }
  for (const std::string& note : membership_notes(members, lags)) std::printf("%s\n", note.c_str());
  return leader != nullptr ? 0 : 1;
}

int run_members(const ClusterArgs& args) {
  Reply reply;
  std::string error;
  if (!ask(args.addr, {"CLUSTER", "MEMBERS"}, args.timeout_ms, &reply, &error) || reply.is_error()) {
    std::cerr << "hmdb cluster members: " << (reply.is_error() ? reply.text : error) << "\n";
    return 1;
  }
  std::cout << reply.text;
  if (!reply.text.empty() && reply.text.back() != '\n') std::cout << "\n";
  return 0;
}


int run_digest(const ClusterArgs& args) {
  std::vector<Member> members;
  std::string error;
  if (args.local) {
    members.push_back(Member{0, args.addr.to_string(), "", false, false});
  } else if (!fetch_members(args.addr, args.timeout_ms, &members, &error)) {
    std::cerr << "hmdb cluster digest: " << error << "\n";
    return 1;
  }
  struct Row {
    uint64_t index = 0;
    std::string digest;
    uint32_t version = 0;  // the schema version it hashed at (0: not said, an older hmdb)
    std::string error;
  };
  std::vector<Row> rows(members.size());
  for (int attempt = 1;; ++attempt) {
    for (size_t i = 0; i < members.size(); ++i) {
      Row& row = rows[i];
      row = Row{};
      HostPort hp;
      Reply reply;
      if (!parse_host_port(members[i].client_addr, &hp, &row.error)) continue;
      if (!ask(hp, {"CLUSTER", "DIGEST"}, kMemberQueryTimeoutMs, &reply, &row.error)) continue;
      if (reply.is_error())
        row.error = reply.text;
      else if (!parse_digest(reply, &row.index, &row.digest, &row.version))
        row.error = "unexpected reply: " + reply.text;
    }
    bool all_ok = true, same_index = true;
    for (const Row& row : rows) {
      all_ok = all_ok && row.error.empty();
      same_index = same_index && row.index == rows[0].index;
    }
    // Indexes differ while writes are in flight: ask again so that equal states can be
    // compared; an unreachable node is not waited for.
    if (!all_ok || same_index || attempt >= kDigestAttempts) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(kDigestRetryMs));
  }
  bool all_ok = true, same_index = true, same_digest = true, same_version = true;
  for (size_t i = 0; i < members.size(); ++i) {
    const Row& row = rows[i];
    const std::string id = args.local ? "-" : std::to_string(members[i].id);  // --local: id unknown
    if (row.error.empty())
      std::printf("%-4s %-21s applied %-10llu digest %s at schema version %s\n", id.c_str(),
                  members[i].client_addr.c_str(), static_cast<unsigned long long>(row.index), row.digest.c_str(),
                  row.version ? std::to_string(row.version).c_str() : "?");
    else
      std::printf("%-4s %-21s error: %s\n", id.c_str(), members[i].client_addr.c_str(), row.error.c_str());
    all_ok = all_ok && row.error.empty();
    same_index = same_index && row.index == rows[0].index;
    same_digest = same_digest && row.digest == rows[0].digest;
    same_version = same_version && row.version == rows[0].version;
  }
  if (args.local) return all_ok ? 0 : 1;
  if (!all_ok) {
    std::printf("not every node answered: cannot compare\n");
    return 1;
  }
  if (!same_index) {
    std::printf("nodes are at different applied indexes (writes in flight?): cannot compare; try again\n");
    return 1;
  }
  if (!same_version) {
    // A node hashes at the active schema version when its binary can express its state
    // there, else at its own newest: these could not all do it at one version.
    std::printf("not comparable: the nodes hashed their states at different schema versions (a binary that cannot "
                "express its state at the active version hashes at its own)\n");
    return 1;
  }
  if (!same_digest) {
    std::printf("DIVERGED: nodes at the same applied index hold different states (compared at schema version %s)\n",
                rows[0].version ? std::to_string(rows[0].version).c_str() : "?");
    return 1;
  }
  std::printf("identical: %zu nodes at applied index %llu, compared at schema version %s\n", members.size(),
              static_cast<unsigned long long>(rows.empty() ? 0 : rows[0].index),
              rows.empty() || !rows[0].version ? "?" : std::to_string(rows[0].version).c_str());
  return 0;
}

std::string versions_text(uint32_t oldest, uint32_t newest) {
  return std::to_string(oldest) + ".." + std::to_string(newest);
}

// One member's answer to CLUSTER DIGEST AT <index>.
MarkRow mark_row_of(const Member& m, uint64_t index) {
  MarkRow row;
  HostPort hp;
  Reply reply;
  if (!parse_host_port(m.client_addr, &hp, &row.error)) {
    if (m.client_addr == "?") row.error = "its address is not known here (ask another node with --addr)";
  } else if (ask(hp, {"CLUSTER", "DIGEST", "AT", std::to_string(index)}, kMemberQueryTimeoutMs, &reply, &row.error) &&
             !parse_mark_reply(reply, index, &row)) {
    row = MarkRow{};
    row.error = "unexpected reply to CLUSTER DIGEST AT: " + reply.text;
  }
  return row;
}

std::string member_name(const Member& m) {
  return "node " + std::to_string(m.id) + " (" + (m.voter ? "voter" : "learner") + ", " + m.client_addr + ")";
}

// The sketch of m's records at the mark (CLUSTER DIGEST AT <index> RECORDS): true with *has
// set if it keeps one, unset if it lists none; false with *error if it did not say.
bool records_of(const Member& m, uint64_t index, core::RecordSketch* out, bool* has, std::string* error) {
  HostPort hp;
  Reply reply;
  if (!parse_host_port(m.client_addr, &hp, error) ||
      !ask(hp, {"CLUSTER", "DIGEST", "AT", std::to_string(index), "RECORDS"}, kMemberQueryTimeoutMs, &reply, error))
    return false;
  return parse_records_reply(reply, out, has, error);
}

// m's answer to CLUSTER DIGEST AT <index> USERS.
UsersRow users_row_of(const Member& m, uint64_t index) {
  UsersRow row;
  HostPort hp;
  Reply reply;
  if (parse_host_port(m.client_addr, &hp, &row.error) &&
      ask(hp, {"CLUSTER", "DIGEST", "AT", std::to_string(index), "USERS"}, kMemberQueryTimeoutMs, &reply, &row.error))
    row.known = parse_users_reply(reply, &row.users, &row.error);
  return row;
}

// Lines saying where member a's records at the mark differ from ref's.
std::vector<std::string> where_records_differ(const Member& a, const Member& ref, uint64_t index) {
  const std::string who = "node " + std::to_string(a.id), other = "node " + std::to_string(ref.id);
  auto sa = std::make_unique<core::RecordSketch>(), sr = std::make_unique<core::RecordSketch>();
  bool has_a = false, has_r = false;
  std::string error;
  if (!records_of(a, index, sa.get(), &has_a, &error)) return {who + " did not list its records: " + error};
  if (!records_of(ref, index, sr.get(), &has_r, &error)) return {other + " did not list its records: " + error};
  if (!has_a || !has_r)
    return {(!has_a && !has_r ? std::string("the app") : (has_a ? other : who) + "'s app") +
            " lists no records (no records hook at the schema version it hashed at): where the states differ is "
            "not known"};
  return record_lines(who, other, core::compare_sketches(*sa, *sr), kVerifyRecordsShown);
}

// leave_out: a member not compared (replace: the old node, when it is down).
int run_verify(const ClusterArgs& args, uint64_t leave_out = 0) {
  std::vector<Member> members;
  std::string error;
  if (!fetch_members(args.addr, args.timeout_ms, &members, &error)) {
    std::cerr << "hmdb cluster verify: " << error << "\n";
    return 1;
  }
  std::erase_if(members, [&](const Member& m) { return m.id == leave_out; });
  // A binary from before digest marks would stop at the mark's entry (an item it does not
  // know): asked first, it answers CLUSTER DIGEST AT with an unknown-subcommand error.
  for (const Member& m : members) {
    const MarkRow row = mark_row_of(m, 0);
    if (row.state == MarkRow::State::kError && row.error.find("unknown subcommand") != std::string::npos) {
      std::cerr << "hmdb cluster verify: refused, nothing was logged: " << member_name(m)
                << " runs a binary without digest marks (it would stop at one): " << row.error << "\n";
      return 1;
    }
  }
  Reply reply;
  HostPort answered_by;
  if (!send_to_leader(args.addr, {"CLUSTER", "DIGEST", "MARK"}, args.timeout_ms, &reply, &answered_by, &error)) {
    std::cerr << "hmdb cluster verify: " << error << "\n";
    return 1;
  }
  if (reply.is_error() || reply.type != ':' || reply.integer <= 0) {
    std::cerr << "hmdb cluster verify: " << answered_by.to_string() << ": "
              << (reply.is_error() ? reply.text : "unexpected reply to CLUSTER DIGEST MARK") << "\n";
    return 1;
  }
  const uint64_t index = static_cast<uint64_t>(reply.integer);
  // Every member applies the mark once it learns its entry committed: asked until none is
  // pending, within --wait-ms.
  std::vector<MarkRow> rows(members.size());
  const uint64_t deadline = monotonic_ms() + static_cast<uint64_t>(args.wait_ms);
  for (;;) {
    bool waiting = false;
    for (size_t i = 0; i < members.size(); ++i) {
      if (rows[i].state == MarkRow::State::kDigest || rows[i].state == MarkRow::State::kNone ||
          rows[i].state == MarkRow::State::kFailed)
        continue;
      rows[i] = mark_row_of(members[i], index);
      waiting = waiting || rows[i].state == MarkRow::State::kPending || rows[i].state == MarkRow::State::kError;
    }
    if (!waiting || monotonic_ms() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(kVerifyPollMs));
  }
  std::printf("digest mark at log index %llu (logged by the leader at %s)\n", static_cast<unsigned long long>(index),
              answered_by.to_string().c_str());
  std::printf("%-4s %-8s %-21s %s\n", "ID", "MEMBER", "CLIENT", "DIGEST AT THE MARK");
  for (size_t i = 0; i < members.size(); ++i) {
    const MarkRow& row = rows[i];
    std::string what;
    switch (row.state) {
      case MarkRow::State::kDigest:
        what = row.digest + " at schema version " + std::to_string(row.hashed_at) + " (active " +
               std::to_string(row.active) + ", reads " + versions_text(row.oldest, row.newest) + ")";
        break;
      case MarkRow::State::kPending: what = "pending: applied " + std::to_string(row.applied); break;
      case MarkRow::State::kFailed: what = "failed: applied " + std::to_string(row.applied); break;
      case MarkRow::State::kNone: what = "none kept: applied " + std::to_string(row.applied); break;
      case MarkRow::State::kError: what = "error: " + row.error; break;
    }
    std::printf("%-4llu %-8s %-21s %s\n", static_cast<unsigned long long>(members[i].id),
                members[i].voter ? "voter" : "learner", members[i].client_addr.c_str(), what.c_str());
  }
  const MarkVerdict verdict = compare_marks(index, members, rows);
  if (verdict.identical) {
    // The ACL users are replicated state beside the app's (core/digest_marks.h): compared
    // at the same mark.
    std::vector<UsersRow> users;
    for (const Member& m : members) users.push_back(users_row_of(m, index));
    const UsersVerdict u = compare_users(members, users);
    if (!u.identical) {
      std::printf("NOT VERIFIED at index %llu: the app's states are identical, the ACL users are not:\n",
                  static_cast<unsigned long long>(index));
      for (const std::string& line : u.lines) std::printf("  %s\n", line.c_str());
      return 1;
    }
    for (const std::string& line : u.lines) std::printf("%s\n", line.c_str());  // members not compared
    std::printf("identical at index %llu, schema version %u (%zu members)%s\n", static_cast<unsigned long long>(index),
                verdict.version, members.size(), u.replicated ? ", ACL users too" : "");
    return 0;
  }
  std::printf("NOT VERIFIED at index %llu:\n", static_cast<unsigned long long>(index));
  for (const std::string& line : verdict.lines) std::printf("  %s\n", line.c_str());
  // Where: each differing member's records against the largest group's (core/record_sketch.h).
  for (const auto& [i, ref] : verdict.differs) {
    std::printf("where node %llu differs from node %llu:\n", static_cast<unsigned long long>(members[i].id),
                static_cast<unsigned long long>(members[ref].id));
    for (const std::string& line : where_records_differ(members[i], members[ref], index))
      std::printf("    %s\n", line.c_str());
  }
  return 1;
}

// Every member's schema versions (INFO server), asked of each one.
std::vector<SchemaView> schema_views(const std::vector<Member>& members) {
  std::vector<SchemaView> views;
  for (const Member& m : members) {
    SchemaView v;
    HostPort hp;
    Reply reply;
    if (!parse_host_port(m.client_addr, &hp, &v.error)) {
      if (m.client_addr == "?") v.error = "its address is not known here (ask another node with --addr)";
    } else if (ask(hp, {"INFO", "server"}, kMemberQueryTimeoutMs, &reply, &v.error)) {
      if (reply.is_error() || reply.type != '$') v.error = reply.is_error() ? reply.text : "unexpected INFO reply";
      else v = schema_view_of(reply.text);
    }
    views.push_back(std::move(v));
  }
  return views;
}

int run_schema(const ClusterArgs& args) {
  std::vector<Member> members;
  std::string error;
  if (!fetch_members(args.addr, args.timeout_ms, &members, &error)) {
    std::cerr << "hmdb cluster schema: " << error << "\n";
    return 1;
  }
  const std::vector<SchemaView> views = schema_views(members);
  std::printf("%-4s %-8s %-21s %-8s %s\n", "ID", "MEMBER", "CLIENT", "READS", "ACTIVE");
  bool all = true;
  std::vector<uint32_t> actives;
  for (size_t i = 0; i < members.size(); ++i) {
    const SchemaView& v = views[i];
    if (!v.known) {
      std::printf("%-4llu %-8s %-21s error: %s\n", static_cast<unsigned long long>(members[i].id),
                  members[i].voter ? "voter" : "learner", members[i].client_addr.c_str(), v.error.c_str());
      all = false;
      continue;
    }
    std::printf("%-4llu %-8s %-21s %-8s %s\n", static_cast<unsigned long long>(members[i].id),
                members[i].voter ? "voter" : "learner", members[i].client_addr.c_str(),
                versions_text(v.oldest, v.newest).c_str(), v.active ? std::to_string(v.active).c_str() : "-");
    if (v.active) actives.push_back(v.active);
  }
  for (size_t i = 0; i < members.size(); ++i)
    if (const std::string b = blocked_text(members[i].id, views[i]); !b.empty()) std::printf("%s\n", b.c_str());
  if (!actives.empty()) {
    const auto [lo, hi] = std::minmax_element(actives.begin(), actives.end());
    if (*lo == *hi) std::printf("active schema version: %u\n", *lo);
    else std::printf("active schema version: %u on some nodes, %u on others (an activation being applied?)\n", *lo, *hi);
  }
  if (const std::string u = upgrade_summary(members, views); !u.empty()) std::printf("%s\n", u.c_str());
  return all ? 0 : 1;
}

int run_activate(const ClusterArgs& args) {
  std::vector<Member> members;
  std::string error;
  if (!fetch_members(args.addr, args.timeout_ms, &members, &error)) {
    std::cerr << "hmdb cluster schema activate: " << error << "\n";
    return 1;
  }
  const std::vector<std::string> obstacles = activation_obstacles(members, schema_views(members), args.version);
  if (!obstacles.empty()) {
    std::cerr << "hmdb cluster schema activate " << args.version << ": refused, nothing was proposed:\n";
    for (const std::string& o : obstacles) std::cerr << "  " << o << "\n";
    return 1;
  }
  Reply reply;
  HostPort answered_by;
  const std::vector<std::string> argv = {"CLUSTER", "SCHEMA", "ACTIVATE", std::to_string(args.version)};
  if (!send_to_leader(args.addr, argv, args.timeout_ms, &reply, &answered_by, &error)) {
    std::cerr << "hmdb cluster schema activate: " << error << "\n";
    return 1;
  }
  if (reply.is_error()) {
    std::cerr << "hmdb cluster schema activate: " << answered_by.to_string() << ": " << reply.text << "\n";
    return 1;
  }
  std::printf("schema version %u is active (committed; answered by the leader at %s)\n", args.version,
              answered_by.to_string().c_str());
  return 0;
}

int run_change(const ClusterArgs& args, const std::vector<std::string>& argv) {
  Reply reply;
  HostPort answered_by;
  std::string error;
  if (!send_to_leader(args.addr, argv, args.timeout_ms, &reply, &answered_by, &error)) {
    std::cerr << "hmdb cluster: " << join_words(argv) << ": " << error << "\n";
    return 1;
  }
  if (reply.is_error()) {
    std::cerr << "hmdb cluster: " << join_words(argv) << ": " << answered_by.to_string() << ": " << reply.text
              << "\n";
    return 1;
  }
  std::printf("%s: %s (answered by the leader at %s)\n", join_words(argv).c_str(),
              reply.type == ':' ? std::to_string(reply.integer).c_str() : reply.text.c_str(),
              answered_by.to_string().c_str());
  return 0;
}


// ---- replace (docs/cluster.md, "Replacing a node") ----

// Where a replace stands and what it measured, for the summary.
struct ReplaceReport {
  bool caught_up_here = false;  // this run waited for the catch-up (else it was done before)
  uint64_t catch_up_ms = 0, catch_up_entries = 0, catch_up_bytes = 0;
  bool bytes_known = false;
  bool transferred = false;
  uint64_t transfer_ms = 0, pause_ms = 0;
};

// The membership as the leader sees it, asked first of `candidates` in order (a node that does
// not answer, or knows no leader, is passed over); retried within kRetryBudgetMs while no
// leader is known (an election).
bool leader_members(const std::vector<HostPort>& candidates, std::vector<Member>* members, HostPort* leader,
                    std::string* error) {
  const uint64_t deadline = monotonic_ms() + kRetryBudgetMs;
  for (;;) {
    for (const HostPort& c : candidates) {
      std::vector<Member> seen;
      if (!fetch_members(c, kMemberQueryTimeoutMs, &seen, error)) continue;
      for (const Member& m : seen) {
        HostPort hp;
        std::string ignored;
        if (!m.leader || !parse_host_port(m.client_addr, &hp, &ignored)) continue;
        if (!fetch_members(hp, kMemberQueryTimeoutMs, members, error)) break;
        bool leads = false;
        for (const Member& x : *members) leads = leads || (x.myself && x.leader);
        if (!leads) break;  // it stepped down meanwhile: ask again
        *leader = hp;
        return true;
      }
      *error = c.to_string() + " knows no leader";
    }
    if (monotonic_ms() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(kRetryBudgetMs / 50));
  }
}

CatchUpSample catch_up_sample(const HostPort& leader, uint64_t node, bool* ok, std::string* error) {
  CatchUpSample s;
  s.ms = monotonic_ms();
  *ok = false;
  const NodeView v = view_of(leader);
  if (!v.reachable) {
    *error = leader.to_string() + ": " + v.error;
    return s;
  }
  auto it = v.peers.find(node);
  if (v.role != "leader" || it == v.peers.end() || !it->second.count("match")) {
    *error = leader.to_string() + " is no longer the leader, or does not replicate to node " + std::to_string(node);
    return s;
  }
  auto number = [&](const char* key) {
    uint64_t n = 0;
    auto f = it->second.find(key);
    return f != it->second.end() && parse_uint64(f->second, &n) ? n : 0;
  };
  parse_uint64(v.last_index, &s.last_index);
  s.match = number("match");
  s.bytes_sent = number("sent_bytes");
  s.connected = !it->second.count("connected") || it->second.at("connected") == "1";
  s.snapshot_acked = number("snapshot_sent");
  s.snapshot_total = number("snapshot_bytes");
  *ok = true;
  return s;
}

std::vector<HostPort> replace_candidates(const ClusterArgs& args, const std::vector<Member>& members) {
  std::vector<HostPort> out = {args.addr};
  for (const Member& m : members) {
    HostPort hp;
    std::string ignored;
    if (parse_host_port(m.client_addr, &hp, &ignored) && !(hp == args.addr)) out.push_back(hp);
  }
  if (!(args.client_addr == args.addr)) out.push_back(args.client_addr);
  return out;
}

int run_replace(const ClusterArgs& args) {
  const std::string old_id = std::to_string(args.old_id), new_id = std::to_string(args.id);
  const std::string resume = "; run the same command again to resume";
  const uint64_t catch_up_deadline = monotonic_ms() + static_cast<uint64_t>(args.catch_up_timeout_s) * 1000;
  ReplaceReport report;
  std::vector<Member> members;
  HostPort leader;
  std::string error, why;
  auto fail = [&](const std::string& what) {
    std::cerr << "hmdb cluster replace: " << what << "\n";
    return 1;
  };
  // A membership change the server answered: false (with *error) if it refused or the outcome
  // is unknown.
  auto change = [&](const std::vector<std::string>& argv, HostPort* answered_by) {
    Reply reply;
    if (!send_to_leader(leader, argv, args.timeout_ms, &reply, answered_by, &error)) return false;
    if (reply.is_error()) {
      error = answered_by->to_string() + ": " + reply.text;
      return false;
    }
    return true;
  };
  for (int round = 0;; ++round) {
    // The state is read afresh before every step: a step's effect (or another operator's) is
    // never assumed.
    if (!leader_members(replace_candidates(args, members), &members, &leader, &error))
      return fail("cannot find the leader: " + error + resume);
    const ReplaceStep step = plan_replace(members, args.old_id, args.id, args.client_addr.to_string(), &why);
    if (round == 0)
      std::printf("replace node %s by node %s (%s): next step: %s (the leader is at %s)\n", old_id.c_str(),
                  new_id.c_str(), args.client_addr.to_string().c_str(), std::string(replace_step_name(step)).c_str(),
                  leader.to_string().c_str());
    std::fflush(stdout);
    if (round > 100) return fail("the membership does not settle (another operator at work?)" + resume);
    HostPort by;
    switch (step) {
      case ReplaceStep::kRefused: return fail("refused, nothing was changed: " + why);
      case ReplaceStep::kAddLearner:
        if (!change({"CLUSTER", "ADDLEARNER", new_id, args.client_addr.to_string(), args.peer_addr.to_string()}, &by))
          return fail("adding node " + new_id + " as a learner: " + error + resume);
        std::printf("added node %s as a learner (committed)\n", new_id.c_str());
        continue;
      case ReplaceStep::kCatchUp: {
        // Caught up: it holds every entry the leader had when the wait began, and is within the
        // leader's promotion bound.
        bool ok = false;
        const CatchUpSample first = catch_up_sample(leader, args.id, &ok, &error);
        if (!ok) {  // the leader changed, or has not yet added the learner's progress: ask again
          std::this_thread::sleep_for(std::chrono::milliseconds(kReplacePollMs));
          continue;
        }
        const uint64_t target = first.last_index;
        CatchUpSample now = first;
        uint64_t next_report = first.ms + kReplaceReportMs;
        bool waited = false;
        while (now.match < target || now.last_index > now.match + kReplacePromoteMaxLag) {
          if (monotonic_ms() >= catch_up_deadline)
            return fail("node " + new_id + " did not catch up within --catch-up-timeout-s (" +
                        std::to_string(args.catch_up_timeout_s) + " s): " + catch_up_line(args.id, first, now) +
                        resume);
          std::this_thread::sleep_for(std::chrono::milliseconds(kReplacePollMs));
          waited = true;
          const CatchUpSample s = catch_up_sample(leader, args.id, &ok, &error);
          if (!ok) break;
          now = s;
          if (now.ms >= next_report) {
            std::printf("%s\n", catch_up_line(args.id, first, now).c_str());
            std::fflush(stdout);
            next_report = now.ms + kReplaceReportMs;
          }
        }
        if (!ok) continue;  // the leader changed mid-way: start the wait again with the new one
        if (waited) {
          report.caught_up_here = true;
          report.catch_up_ms = now.ms - first.ms;
          report.catch_up_entries = now.match - first.match;
          report.catch_up_bytes = now.bytes_sent - first.bytes_sent;
          report.bytes_known = now.bytes_sent > 0;
        }
        std::printf("caught up: node %s holds %llu of the leader's %llu entries (at most %llu behind: the promotion "
                    "bound)\n",
                    new_id.c_str(), static_cast<unsigned long long>(now.match),
                    static_cast<unsigned long long>(now.last_index),
                    static_cast<unsigned long long>(kReplacePromoteMaxLag));
        // Every member, the new one included, must hold one state at one mark before it votes.
        // The old node is left out only when it is down (a failed machine being replaced): it
        // would only be reported as not answering.
        ClusterArgs verify_args = args;
        verify_args.addr = leader;
        uint64_t leave_out = 0;
        for (const Member& m : members) {
          HostPort hp;
          std::string ignored;
          Reply reply;
          if (m.id == args.old_id &&
              (!parse_host_port(m.client_addr, &hp, &ignored) ||
               !ask(hp, {"PING"}, kMemberQueryTimeoutMs, &reply, &ignored))) {
            leave_out = m.id;
            std::printf("node %s does not answer: it is left out of the verify\n", old_id.c_str());
          }
        }
        std::fflush(stdout);
        if (run_verify(verify_args, leave_out) != 0)
          return fail("stopped before promoting node " + new_id +
                      ": the members do not hold one state at the mark (above). If a member is only behind or "
                      "still hashing, run the same command again. If node " + new_id +
                      " DIFFERS, remove it (`hmdb cluster remove " + new_id +
                      "`), wipe its data directory, start it again with --join and rerun. If only node " + old_id +
                      " differs, it is the damaged one: `hmdb cluster remove " + old_id +
                      "`, then rerun (node " + new_id + " is then promoted). Another member that differs needs "
                      "replacing too (docs/cluster.md, \"Verifying\")");
        // The leader refuses while it is more than kReplacePromoteMaxLag behind (a burst of
        // writes since): retried within the catch-up bound.
        for (;;) {
          if (change({"CLUSTER", "PROMOTE", new_id}, &by)) break;
          if (error.find("entries behind") == std::string::npos || monotonic_ms() >= catch_up_deadline)
            return fail("promoting node " + new_id + ": " + error + resume);
          std::this_thread::sleep_for(std::chrono::milliseconds(kReplacePollMs));
        }
        std::printf("promoted node %s to voter (committed)\n", new_id.c_str());
        continue;
      }
      case ReplaceStep::kTransfer: {
        // The write pause: from the transfer request (the old leader answers writes -TRYAGAIN
        // from then on) until the new leader answers a logged write, a digest mark, which it
        // does once the mark committed and it applied it.
        const uint64_t t0 = monotonic_ms();
        if (!change({"CLUSTER", "TRANSFER", new_id}, &by))
          return fail("transferring leadership to node " + new_id + ": " + error + resume);
        const uint64_t t1 = monotonic_ms();
        Reply reply;
        if (!send_to_leader(args.client_addr, {"CLUSTER", "DIGEST", "MARK"}, args.timeout_ms, &reply, &by, &error) ||
            reply.is_error())
          return fail("node " + new_id + " leads, but its first write failed: " +
                      (reply.is_error() ? reply.text : error) + resume);
        report.transferred = true;
        report.transfer_ms = t1 - t0;
        report.pause_ms = monotonic_ms() - t0;
        std::printf("leadership moved to node %s in %llu ms; its first logged write committed %llu ms after the "
                    "transfer request\n",
                    new_id.c_str(), static_cast<unsigned long long>(report.transfer_ms),
                    static_cast<unsigned long long>(report.pause_ms));
        continue;
      }
      case ReplaceStep::kRemove: {
        HostPort old_addr;
        std::string ignored;
        for (const Member& m : members)
          if (m.id == args.old_id) parse_host_port(m.client_addr, &old_addr, &ignored);
        if (!change({"CLUSTER", "REMOVE", old_id}, &by)) return fail("removing node " + old_id + ": " + error + resume);
        std::printf("removed node %s (committed); ", old_id.c_str());
        // It stops by itself (exit code 4) once it learns of its removal: watched, bounded.
        const uint64_t until = monotonic_ms() + kReplaceStopWaitMs;
        bool stopped = false;
        while (!stopped && monotonic_ms() < until) {
          Reply reply;
          stopped = old_addr.port == 0 || !ask(old_addr, {"PING"}, kMemberQueryTimeoutMs, &reply, &ignored);
          if (!stopped) std::this_thread::sleep_for(std::chrono::milliseconds(kReplacePollMs));
        }
        std::printf(stopped ? "it does not answer at %s (a removed node stops by itself, exit code 4)\n"
                            : "it still answers at %s: it stops by itself once it learns of its removal\n",
                    old_addr.to_string().c_str());
        continue;
      }
      case ReplaceStep::kDone: break;
    }
    break;
  }
  // The summary.
  std::printf("replaced node %s by node %s\n", old_id.c_str(), new_id.c_str());
  if (report.caught_up_here) {
    const double s = std::max<uint64_t>(report.catch_up_ms, 1) / 1000.0;
    std::printf("  catch-up: %llu entries in %.1f s (%.0f entries/s)", static_cast<unsigned long long>(report.catch_up_entries),
                s, report.catch_up_entries / s);
    if (report.bytes_known)
      std::printf(", %s sent (%s/s)", human_bytes(report.catch_up_bytes).c_str(),
                  human_bytes(static_cast<uint64_t>(report.catch_up_bytes / s)).c_str());
    std::printf("\n");
  } else {
    std::printf("  catch-up: not measured (node %s had caught up before this run)\n", new_id.c_str());
  }
  if (report.transferred)
    std::printf("  write pause: %llu ms, from the transfer request to node %s's first committed write (the transfer "
                "itself: %llu ms)\n",
                static_cast<unsigned long long>(report.pause_ms), new_id.c_str(),
                static_cast<unsigned long long>(report.transfer_ms));
  else
    std::printf("  write pause: none measured (node %s did not lead during this run: no leadership transfer)\n",
                old_id.c_str());
  std::printf("  members:");
  for (const Member& m : members)
    std::printf(" %llu (%s%s)", static_cast<unsigned long long>(m.id), m.voter ? "voter" : "learner",
                m.leader ? ", leader" : "");
  std::printf("\n");
  return 0;
}
}  // namespace

// ---------------------------------------------------------------------------------------

bool send_to_leader(const HostPort& start, const std::vector<std::string>& argv, int timeout_ms, Reply* reply,
                HostPort* answered_by, std::string* error) {
  const int64_t deadline = static_cast<int64_t>(monotonic_ms()) + kRetryBudgetMs;
  int backoff_ms = kFirstBackoffMs;
  int redirects = 0;
  HostPort target = start;
  std::string last_retried;
  // Waits before the next attempt; false when the budget does not allow one.
  auto pause = [&]() {
    if (static_cast<int64_t>(monotonic_ms()) + backoff_ms > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
    redirects = 0;  // a new round: the bound is per round, the budget bounds the rounds
    return true;
  };
  for (;;) {
    Connection c;
    if (!c.open(target, timeout_ms, error)) {
      // A leader named by a redirect may have just died: ask the first node again, which
      // learns the new leader within an election.
      if (!(target == start) && pause()) {
        std::cerr << "hmdb cluster: " << *error << "; asking " << start.to_string() << " again\n";
        target = start;
        continue;
      }
      return false;
    }
    // Not retried on failure: the command may have taken effect (outcome unknown).
    if (!c.call(argv, reply, error)) return false;
    *answered_by = target;
    if (!reply->is_error()) return true;
    HostPort leader;
    if (parse_moved(reply->text, &leader)) {
      if (++redirects > kMaxRedirects) {
        *error = "more than " + std::to_string(kMaxRedirects) + " redirects (last: " + reply->text + ")";
        return false;
      }
      std::cerr << "hmdb cluster: " << target.to_string() << " is not the leader; following MOVED to "
                << leader.to_string() << "\n";
      target = leader;
      continue;
    }
    if (is_retryable_error(reply->text)) {
      // Said once per distinct error, not once per attempt.
      if (reply->text != last_retried) {
        std::cerr << "hmdb cluster: " << target.to_string() << ": " << reply->text << " (retrying for up to "
                  << kRetryBudgetMs / 1000 << " s)\n";
        last_retried = reply->text;
      }
      if (pause()) continue;
      return true;  // the budget is spent: the caller reports this error
    }
    return true;
  }
}

bool parse_moved(std::string_view error_text, HostPort* leader) {
  // "MOVED <slot> <host:port>"
  constexpr std::string_view kPrefix = "MOVED ";
  if (error_text.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view rest = error_text.substr(kPrefix.size());
  const size_t space = rest.find(' ');
  uint64_t slot = 0;
  if (space == std::string_view::npos || !parse_uint64(rest.substr(0, space), &slot)) return false;
  // Redis writes an IPv6 host without brackets ("::1:7379"): the port follows the last ':'.
  std::string addr(rest.substr(space + 1));
  const size_t colon = addr.rfind(':');
  if (colon != std::string::npos && addr.find(':') < colon && addr.front() != '[')
    addr = "[" + addr.substr(0, colon) + "]" + addr.substr(colon);
  std::string ignored;
  return parse_host_port(addr, leader, &ignored);
}

bool is_retryable_error(std::string_view error_text) {
  auto starts = [&](std::string_view word) {
    return error_text.substr(0, word.size()) == word &&
           (error_text.size() == word.size() || error_text[word.size()] == ' ');
  };
  // The server refused before proposing (CLUSTERDOWN, TRYAGAIN during a leadership
  // transfer, a busy leader), or says the write provably did not take effect.
  return starts("CLUSTERDOWN") || starts("TRYAGAIN") ||
         (starts("ERR") && (error_text.find("write lost in a leadership change") != std::string_view::npos ||
                            error_text.find("the leader is busy") != std::string_view::npos));
}

bool parse_members(std::string_view text, std::vector<Member>* out, std::string* error) {
  out->clear();
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const std::string_view whole = line;
    std::vector<std::string_view> words;
    while (!line.empty()) {
      const size_t space = line.find(' ');
      if (space != 0) words.push_back(line.substr(0, space));
      line.remove_prefix(space == std::string_view::npos ? line.size() : space + 1);
    }
    Member m;
    bool good = words.size() >= 4 && parse_uint64(words[0], &m.id) && m.id > 0 &&
                (words[3] == "voter" || words[3] == "learner");
    // Flags after the kind: "leader", "myself" (the node that answered); others are
    // refused so that a format change is noticed rather than misread.
    for (size_t i = 4; good && i < words.size(); ++i) {
      if (words[i] == "leader")
        m.leader = true;
      else if (words[i] == "myself")
        m.myself = true;
      else
        good = false;
    }
    if (!good) {
      *error = "malformed CLUSTER MEMBERS line: '" + std::string(whole) + "'";
      return false;
    }
    m.client_addr = std::string(words[1]);
    m.peer_addr = std::string(words[2]);
    m.voter = words[3] == "voter";
    out->push_back(std::move(m));
  }
  return true;
}

std::string info_field(std::string_view info, std::string_view key) {
  while (!info.empty()) {
    const size_t eol = info.find('\n');
    std::string_view line = info.substr(0, eol);
    info.remove_prefix(eol == std::string_view::npos ? info.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':')
      return std::string(line.substr(key.size() + 1));
  }
  return {};
}

bool parse_digest(const Reply& reply, uint64_t* index, std::string* digest, uint32_t* version) {
  if (reply.type != '$' && reply.type != '+') return false;
  std::string_view text = reply.text;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  const size_t space = text.find(' ');
  if (space == std::string_view::npos || !parse_uint64(text.substr(0, space), index)) return false;
  text.remove_prefix(space + 1);
  const size_t second = text.find(' ');
  uint64_t v = 0;
  *version = 0;  // an hmdb from before versions sends "<index> <digest>"
  if (second != std::string_view::npos) {
    if (!parse_uint64(text.substr(second + 1), &v) || v == 0 || v > UINT32_MAX) return false;
    *version = static_cast<uint32_t>(v);
    text = text.substr(0, second);
  }
  *digest = std::string(text);
  return !digest->empty();
}

bool parse_mark_reply(const Reply& reply, uint64_t index, MarkRow* out) {
  *out = MarkRow{};
  if (reply.is_error()) {
    out->error = reply.text;
    return true;
  }
  if (reply.type != '$' && reply.type != '+') return false;
  std::vector<std::string_view> words;
  std::string_view text = reply.text;
  while (!text.empty()) {
    const size_t space = text.find(' ');
    if (space != 0) words.push_back(text.substr(0, space));
    text.remove_prefix(space == std::string_view::npos ? text.size() : space + 1);
  }
  auto version = [](std::string_view w, uint32_t* v) {
    uint64_t n = 0;
    if (!parse_uint64(w, &n) || n == 0 || n > UINT32_MAX) return false;
    *v = static_cast<uint32_t>(n);
    return true;
  };
  if (words.size() == 2 && words[0] == "pending") {
    out->state = MarkRow::State::kPending;
    return parse_uint64(words[1], &out->applied);
  }
  if (words.size() == 2 && words[0] == "failed") {
    out->state = MarkRow::State::kFailed;
    return parse_uint64(words[1], &out->applied);
  }
  if (words.size() == 3 && words[0] == "none") {
    out->state = MarkRow::State::kNone;
    return parse_uint64(words[1], &out->applied) && parse_uint64(words[2], &out->oldest_kept);
  }
  uint64_t at = 0;
  if (words.size() != 5 || !parse_uint64(words[0], &at) || at != index || words[1].empty()) return false;
  const size_t dots = words[4].find("..");
  if (dots == std::string_view::npos || !version(words[2], &out->hashed_at) || !version(words[3], &out->active) ||
      !version(words[4].substr(0, dots), &out->oldest) || !version(words[4].substr(dots + 2), &out->newest))
    return false;
  out->state = MarkRow::State::kDigest;
  out->digest = std::string(words[1]);
  out->applied = index;
  return true;
}

bool parse_records_reply(const Reply& reply, core::RecordSketch* out, bool* has, std::string* error) {
  *has = false;
  const std::string_view text = reply.text;
  if (reply.is_error()) {
    *error = reply.text;
    return false;
  }
  if (reply.type == '$' && text == "records none") return true;
  std::string bytes;
  if (reply.type != '$' || !text.starts_with("records ") || !core::from_hex(text.substr(8), &bytes) ||
      !core::RecordSketch::decode(bytes, out)) {
    *error = "unexpected reply to CLUSTER DIGEST AT RECORDS: " + std::string(text.substr(0, 64));
    return false;
  }
  *has = true;
  return true;
}

bool parse_users_reply(const Reply& reply, std::string* users, std::string* error) {
  users->clear();
  if (reply.is_error()) {
    *error = reply.text;
    return false;
  }
  const std::string_view text = reply.text;
  if (reply.type == '$' && text == "users none") return true;
  std::string bytes;
  if (reply.type != '$' || !text.starts_with("users ") || text.size() != 6 + 16 || !core::from_hex(text.substr(6), &bytes)) {
    *error = "unexpected reply to CLUSTER DIGEST AT USERS: " + std::string(text.substr(0, 64));
    return false;
  }
  *users = std::string(text.substr(6));
  return true;
}

UsersVerdict compare_users(const std::vector<Member>& members, const std::vector<UsersRow>& rows) {
  UsersVerdict v;
  // The largest group of equal answers is the reference; every other answer differs from it.
  std::map<std::string, size_t> groups;
  for (const UsersRow& r : rows)
    if (r.known) groups[r.users]++;
  std::string ref;
  size_t best = 0;
  for (const auto& [users, n] : groups)
    if (n > best) best = n, ref = users;
  auto shown = [](const std::string& users) { return users.empty() ? std::string("none replicated") : users; };
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string who = "node " + std::to_string(members[i].id);
    if (!rows[i].known) {
      v.lines.push_back(who + ": ACL users not compared: " + rows[i].error);
    } else if (rows[i].users != ref) {
      v.identical = false;
      v.lines.push_back(who + ": ACL users " + shown(rows[i].users) + ", the others' " + shown(ref));
    }
  }
  v.replicated = v.identical && !ref.empty() && best > 0;
  return v;
}

std::vector<std::string> record_lines(const std::string& who, const std::string& ref,
                                      const core::SketchComparison& c, size_t shown) {
  std::vector<std::string> lines;
  if (c.buckets.empty() && c.records.empty())
    return {"the records the app lists are the same on both: they differ in what its records hook leaves out, or in "
            "the engine's part of the state (the request table of tagged writes)"};
  std::string buckets;
  for (size_t i = 0; i < c.buckets.size() && i < 8; ++i) buckets += (i ? ", " : "") + std::to_string(c.buckets[i]);
  if (c.buckets.size() > 8) buckets += ", ...";
  lines.push_back(std::to_string(c.buckets.size()) + " of " + std::to_string(core::kSketchBuckets) +
                  " record buckets differ (" + buckets + "); " +
                  (c.complete ? std::to_string(c.records.size()) + " record" + (c.records.size() == 1 ? "" : "s") +
                                    " differ" + (c.records.size() == 1 ? "s" : "") + ":"
                              : "more records differ than the sketch names (it names up to about 100); " +
                                    std::to_string(c.records.size()) + " named:"));
  auto hex = [](uint64_t h) { return fmt::format("{:016x}", h); };
  for (size_t i = 0; i < c.records.size() && i < shown; ++i) {
    const core::RecordDifference& r = c.records[i];
    const std::string key = core::printable_key(r.key, r.key_size);
    if (r.hash_a && r.hash_b)
      lines.push_back("  " + key + ": held differently (record hash " + hex(*r.hash_a) + " on " + who + ", " +
                      hex(*r.hash_b) + " on " + ref + ")");
    else
      lines.push_back("  " + key + ": only on " + (r.hash_a ? who : ref) + " (missing on " + (r.hash_a ? ref : who) + ")");
  }
  if (c.records.size() > shown) lines.push_back("  ... and " + std::to_string(c.records.size() - shown) + " more");
  return lines;
}

MarkVerdict compare_marks(uint64_t index, const std::vector<Member>& members, const std::vector<MarkRow>& rows) {
  MarkVerdict v;
  // The comparable members, grouped by digest (in the order first seen).
  std::vector<std::pair<std::string, std::vector<size_t>>> groups;
  for (size_t i = 0; i < members.size() && i < rows.size(); ++i) {
    const MarkRow& row = rows[i];
    const std::string who = member_name(members[i]);
    switch (row.state) {
      case MarkRow::State::kDigest:
        if (row.hashed_at != row.active) {
          v.lines.push_back(who + " cannot compare: its binary (schema versions " + versions_text(row.oldest, row.newest) +
                            ") cannot hash its state at the active version " + std::to_string(row.active) +
                            "; it hashed at " + std::to_string(row.hashed_at));
          continue;
        }
        v.version = row.active;
        {
          auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return x.first == row.digest; });
          if (g == groups.end()) groups.push_back({row.digest, {i}});
          else g->second.push_back(i);
        }
        break;
      case MarkRow::State::kPending:
        v.lines.push_back(row.applied >= index ? who + " was still hashing its state at the mark (applied " +
                                                     std::to_string(row.applied) + ")"
                                               : who + " is behind: it has applied up to index " +
                                                     std::to_string(row.applied) + ", not yet the mark");
        break;
      case MarkRow::State::kFailed:
        v.lines.push_back(who + " could not take its digest at the mark (its log says why)");
        break;
      case MarkRow::State::kNone:
        v.lines.push_back(who + " has no digest at index " + std::to_string(index) + " (applied " +
                          std::to_string(row.applied) +
                          "): it did not apply the mark itself (it installed a snapshot past it?), or no longer keeps "
                          "it (oldest kept: " +
                          std::to_string(row.oldest_kept) + ")");
        break;
      case MarkRow::State::kError: v.lines.push_back(who + " did not answer: " + row.error); break;
    }
  }
  if (groups.size() > 1) {
    // The largest group is named first; every other one differs from it.
    std::stable_sort(groups.begin(), groups.end(),
                     [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
    auto ids = [&](const std::vector<size_t>& g) {
      std::string s;
      for (size_t i : g) s += (s.empty() ? "" : ", ") + std::to_string(members[i].id);
      return s;
    };
    for (size_t k = 1; k < groups.size(); ++k)
      for (size_t i : groups[k].second) {
        v.differs.push_back({i, groups[0].second[0]});
        v.lines.push_back(member_name(members[i]) + " DIFFERS: digest " + groups[k].first + ", where node" +
                          (groups[0].second.size() > 1 ? "s " : " ") + ids(groups[0].second) + " hashed " +
                          groups[0].first + (groups[0].second.size() == groups[k].second.size() ? " (no majority)" : ""));
      }
  }
  v.identical = v.lines.empty() && groups.size() == 1;
  return v;
}

SchemaView schema_view_of(std::string_view info) {
  SchemaView v;
  uint64_t newest = 0, oldest = 0, active = 0;
  if (!parse_uint64(info_field(info, "schema_version"), &newest) || newest == 0 || newest > UINT32_MAX) {
    v.error = "its INFO shows no schema version";
    return v;
  }
  // An hmdb from before versions were ranges reads its one version, and does not say which
  // is active.
  if (!parse_uint64(info_field(info, "schema_version_oldest"), &oldest) || oldest == 0 || oldest > newest) oldest = newest;
  if (!parse_uint64(info_field(info, "schema_version_active"), &active) || active > UINT32_MAX) active = 0;
  uint64_t blocked = 0, blocked_version = 0;
  if (parse_uint64(info_field(info, "schema_blocked_at_index"), &blocked) &&
      parse_uint64(info_field(info, "schema_blocked_version"), &blocked_version) && blocked_version <= UINT32_MAX) {
    v.blocked_index = blocked;
    v.blocked_version = static_cast<uint32_t>(blocked_version);
  }
  v.known = true;
  v.newest = static_cast<uint32_t>(newest);
  v.oldest = static_cast<uint32_t>(oldest);
  v.active = static_cast<uint32_t>(active);
  return v;
}

std::string blocked_text(uint64_t id, const SchemaView& v) {
  if (!v.known || v.blocked_index == 0) return {};
  return "node " + std::to_string(id) + ": BLOCKED at log index " + std::to_string(v.blocked_index) +
         ": that entry needs schema version " + std::to_string(v.blocked_version) + ", and its binary reads " +
         versions_text(v.oldest, v.newest) +
         ". It applies nothing more, does not lead and refuses clients, but stores the log and votes: restart it "
         "with a binary that reads version " + std::to_string(v.blocked_version) + ", or remove it.";
}

std::vector<std::string> activation_obstacles(const std::vector<Member>& members, const std::vector<SchemaView>& views,
                                              uint32_t version) {
  std::vector<std::string> out;
  for (size_t i = 0; i < members.size() && i < views.size(); ++i) {
    const Member& m = members[i];
    const SchemaView& v = views[i];
    const std::string who = "node " + std::to_string(m.id) + " (" + (m.voter ? "voter" : "learner") + ", " +
                            m.client_addr + ")";
    if (!v.known) {
      out.push_back(who + " did not answer, and every member must be asked: " + v.error);
    } else if (version < v.oldest || version > v.newest) {
      out.push_back(who + " reads schema versions " + versions_text(v.oldest, v.newest) +
                    ": it would be left blocked at the activation (upgrade it, or remove it from the cluster)");
    }
  }
  return out;
}

std::string upgrade_summary(const std::vector<Member>& members, const std::vector<SchemaView>& views) {
  uint32_t target = 0, active = 0;
  for (const SchemaView& v : views) {
    if (!v.known) continue;
    target = std::max(target, v.newest);
    if (v.active != 0) active = active == 0 ? v.active : std::min(active, v.active);
  }
  if (active == 0 || target <= active) return {};
  const std::string t = std::to_string(target);
  std::string missing;
  size_t reading = 0;
  for (size_t i = 0; i < members.size() && i < views.size(); ++i) {
    const SchemaView& v = views[i];
    if (v.known && v.oldest <= target && target <= v.newest) {
      reading++;
      continue;
    }
    missing += (missing.empty() ? "" : ", ") + std::string("node ") + std::to_string(members[i].id) +
               (v.known ? " reads " + versions_text(v.oldest, v.newest) : " did not answer");
  }
  const std::string head = "upgrade to schema version " + t + ": " + std::to_string(reading) + " of " +
                           std::to_string(members.size()) + " members read it";
  const std::string abandon = "; until then it can be abandoned, losing no write (docs/cluster.md, \"Upgrading a cluster\")";
  if (missing.empty())
    return head + "; the gate is not committed: `hmdb cluster schema activate " + t +
           "` commits it (no going back after that)" + abandon;
  return head + " (not yet: " + missing + "); the gate is not committed, and `hmdb cluster schema activate " + t +
         "` is refused until every member reads it" + abandon;
}

// ---- replace ----

ReplaceStep plan_replace(const std::vector<Member>& members, uint64_t old_id, uint64_t new_id,
                         const std::string& new_client, std::string* why) {
  const Member* old_member = nullptr;
  const Member* new_member = nullptr;
  for (const Member& m : members) {
    if (m.id == old_id) old_member = &m;
    if (m.id == new_id) new_member = &m;
  }
  if (old_id == new_id) {
    *why = "the old and the new node are the same (" + std::to_string(old_id) + ")";
    return ReplaceStep::kRefused;
  }
  if (new_member != nullptr && new_member->client_addr != "?" && new_member->client_addr != new_client) {
    *why = "node " + std::to_string(new_id) + " is a member at " + new_member->client_addr + ", not " + new_client +
           " (a new node needs an unused id)";
    return ReplaceStep::kRefused;
  }
  if (new_member == nullptr) {
    if (old_member == nullptr) {
      *why = "node " + std::to_string(old_id) + " is not a member";
      return ReplaceStep::kRefused;
    }
    return ReplaceStep::kAddLearner;
  }
  if (!new_member->voter) return ReplaceStep::kCatchUp;
  if (old_member == nullptr) return ReplaceStep::kDone;
  return old_member->leader ? ReplaceStep::kTransfer : ReplaceStep::kRemove;
}

std::string_view replace_step_name(ReplaceStep step) {
  switch (step) {
    case ReplaceStep::kAddLearner: return "add the new node as a learner";
    case ReplaceStep::kCatchUp: return "wait for the learner's catch-up, verify, promote it";
    case ReplaceStep::kTransfer: return "transfer leadership from the old node to the new one";
    case ReplaceStep::kRemove: return "remove the old node";
    case ReplaceStep::kDone: return "none (done)";
    case ReplaceStep::kRefused: return "none (refused)";
  }
  return "?";
}

std::string human_bytes(uint64_t bytes) {
  char buf[32];
  if (bytes < 1024) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else if (bytes < (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  else if (bytes < (1u << 30)) std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / 1073741824.0);
  return buf;
}

std::string catch_up_line(uint64_t node, const CatchUpSample& first, const CatchUpSample& now) {
  const uint64_t ms = now.ms > first.ms ? now.ms - first.ms : 0;
  const double s = ms / 1000.0;
  const uint64_t behind = now.last_index > now.match ? now.last_index - now.match : 0;
  const uint64_t entries = now.match > first.match ? now.match - first.match : 0;
  const uint64_t bytes = now.bytes_sent > first.bytes_sent ? now.bytes_sent - first.bytes_sent : 0;
  char buf[128];
  std::string line = "node " + std::to_string(node) + ": ";
  if (now.snapshot_total > 0) {
    line += "receiving a snapshot, " + human_bytes(now.snapshot_acked) + " of " + human_bytes(now.snapshot_total) +
            "; ";
  }
  line += std::to_string(behind) + " entries behind (holds " + std::to_string(now.match) + " of " +
          std::to_string(now.last_index) + ")";
  if (now.bytes_sent > 0) line += ", " + human_bytes(bytes) + " sent";
  if (ms > 0) {
    std::snprintf(buf, sizeof buf, ", %.0f entries/s", entries / s);
    line += buf;
    if (now.bytes_sent > 0) line += ", " + human_bytes(static_cast<uint64_t>(bytes / s)) + "/s";
  }
  // Time left at the rate so far: of the snapshot by bytes while one streams, else of the
  // entries behind (an estimate: writes keep adding entries).
  double left = -1;
  if (now.snapshot_total > 0 && bytes > 0 && ms > 0)
    left = (now.snapshot_total - std::min(now.snapshot_acked, now.snapshot_total)) / (bytes / s);
  else if (entries > 0 && ms > 0)
    left = behind / (entries / s);
  if (behind == 0 && now.snapshot_total == 0) line += ", caught up";
  else if (left >= 0) {
    std::snprintf(buf, sizeof buf, ", about %.0f s left", left < 1 ? 1.0 : left);
    line += buf;
  }
  if (!now.connected) line += " (the leader's link to it is down)";
  return line;
}

std::vector<std::string> membership_notes(const std::vector<Member>& members, const std::vector<std::string>& lag) {
  std::vector<std::string> out;
  size_t voters = 0;
  for (const Member& m : members) voters += m.voter ? 1 : 0;
  for (size_t i = 0; i < members.size(); ++i) {
    const Member& m = members[i];
    if (m.voter) continue;
    const std::string id = std::to_string(m.id);
    const std::string behind = i < lag.size() && !lag[i].empty() && lag[i] != "-"
                                   ? lag[i] + " entries behind the leader"
                                   : "its lag unknown (no leader answered)";
    out.push_back("node " + id + " is a learner (it receives the log, does not vote), " + behind +
                  ". `hmdb cluster promote " + id + "` makes it a voter (refused while more than " +
                  std::to_string(kReplacePromoteMaxLag) + " entries behind); `hmdb cluster replace OLD " + id + " " +
                  m.client_addr + " " + m.peer_addr +
                  "` resumes a replace of OLD (catch-up, verify, promote, transfer, remove OLD); `hmdb cluster "
                  "remove " + id + "` drops it");
  }
  if (voters >= 4 && voters % 2 == 0)
    out.push_back(std::to_string(voters) + " voters: a majority is " + std::to_string(voters / 2 + 1) +
                  ", so this tolerates no more failures than " + std::to_string(voters - 1) +
                  " voters would. A replace interrupted after promoting its new node leaves this; `hmdb cluster "
                  "replace OLD NEW ...` run again moves leadership off OLD if it leads and removes it");
  return out;
}

namespace {

// --password (or HMDB_PASSWORD) and --tls --cacert --cert --key, redis-cli's names: the
// same for `hmdb cluster` and `hmdb snapshot`.
struct ClientSecurityFlags {
  bool tls = false;
  net::TlsFiles files;
};

void add_client_security_flags(CLI::App* app, ClientSecurityFlags* f, const char* whom) {
  app->add_option("--password", cluster_password(),
                  std::string(whom) + "'s requirepass (docs/security.md); default: the HMDB_PASSWORD environment "
                  "variable, which a command line (visible to every local user) should prefer")
      ->envname("HMDB_PASSWORD");
  app->add_flag("--tls", f->tls,
                std::string("speak TLS to ") + whom + "'s client (TLS) port, checking its certificate against --cacert");
  app->add_option("--cacert", f->files.ca_cert_file, std::string("PEM CA certificate ") + whom + "'s certificate must chain to");
  app->add_option("--cert", f->files.cert_file, "PEM client certificate to present (tls-auth-clients yes)");
  app->add_option("--key", f->files.key_file, "PEM private key of --cert");
}

// Makes the TLS context the connections use (cluster_tls()). Returns -1 when the flags are
// good, else the exit status (2: bad usage), having printed why.
int apply_client_security_flags(const ClientSecurityFlags& f, const char* tool) {
  if (f.tls) {
    if (f.files.ca_cert_file.empty()) {
      std::cerr << tool << ": --tls needs --cacert (the CA that signed the nodes' certificates)\n";
      return 2;
    }
    if (Status s = net::TlsContext::create(net::TlsContext::Role::kClient, f.files, net::TlsAuthClients::kYes,
                                           &cluster_tls());
        !s) {
      std::cerr << tool << ": " << s.message() << "\n";
      return 2;
    }
  } else if (!f.files.ca_cert_file.empty() || !f.files.cert_file.empty() || !f.files.key_file.empty()) {
    std::cerr << tool << ": --cacert, --cert and --key need --tls\n";
    return 2;
  }
  return -1;
}

}  // namespace

int parse_cluster_args(int argc, char** argv, ClusterArgs* out) {
  const CLI::Range kNodeIdRange(uint64_t{1}, std::numeric_limits<uint64_t>::max(), "node id");
  CLI::App app{"hmdb cluster: operate a running cluster (docs/cluster.md)", "hmdb cluster"};
  app.require_subcommand(1);
  app.fallthrough();
  std::string addr(kDefaultAddr);
  app.add_option("--addr", addr, "HOST:PORT (client address) of any node; commands follow -MOVED to the leader")
      ->capture_default_str();
  ClientSecurityFlags security;
  add_client_security_flags(&app, &security, "the nodes");
  app.add_option("--timeout-ms", out->timeout_ms, "how long to wait for one reply")
      ->check(CLI::Range(1, 3600 * 1000))
      ->capture_default_str();
  std::string client_addr, peer_addr;
  auto* status = app.add_subcommand("status", "members, roles, terms, indexes and each follower's lag");
  auto* members = app.add_subcommand("members", "print CLUSTER MEMBERS of the node at --addr");
  auto* add = app.add_subcommand("add-learner", "add a node (started with --join) as a non-voting learner");
  add->add_option("id", out->id, "the new node's --node-id")->required()->check(kNodeIdRange);
  add->add_option("client_addr", client_addr, "its client address HOST:PORT")->required();
  add->add_option("peer_addr", peer_addr, "its peer address HOST:PORT")->required();
  auto* promote = app.add_subcommand("promote", "make a caught-up learner a voter");
  promote->add_option("id", out->id, "node id")->required()->check(kNodeIdRange);
  auto* remove = app.add_subcommand("remove", "remove a node from the cluster");
  remove->add_option("id", out->id, "node id")->required()->check(kNodeIdRange);
  auto* transfer = app.add_subcommand("transfer", "hand leadership to a voter; returns once it leads");
  transfer->add_option("id", out->id, "node id")->required()->check(kNodeIdRange);
  auto* digest = app.add_subcommand("digest", "compare the state digests of all members (exit 0: identical)");
  digest->add_flag("--local", out->local, "only print the digest of the node at --addr");
  auto* verify = app.add_subcommand(
      "verify", "log a digest mark and compare every member's digest at it (exit 0: identical at that index)");
  verify->add_option("--wait-ms", out->wait_ms, "how long to wait for every member to apply the mark")
      ->check(CLI::Range(1, 3600 * 1000))
      ->capture_default_str();
  uint64_t replace_new = 0;
  auto* replace = app.add_subcommand(
      "replace", "move OLD's place to a new node (started with --join): learner, catch-up, verify, promote, "
                 "transfer, remove OLD; run again to resume");
  replace->add_option("old", out->old_id, "the member to replace")->required()->check(kNodeIdRange);
  replace->add_option("new_id", replace_new, "the new node's --node-id")->required()->check(kNodeIdRange);
  replace->add_option("new_client", client_addr, "its client address HOST:PORT")->required();
  replace->add_option("new_peer", peer_addr, "its peer address HOST:PORT")->required();
  replace->add_option("--catch-up-timeout-s", out->catch_up_timeout_s,
                      "how long to wait for the new node to catch up and be promoted")
      ->check(CLI::Range(1, 7 * 24 * 3600))
      ->capture_default_str();
  replace->add_option("--wait-ms", out->wait_ms, "verify: how long to wait for every member to apply the mark")
      ->check(CLI::Range(1, 3600 * 1000))
      ->capture_default_str();
  auto* schema = app.add_subcommand("schema", "each member's schema versions (read, active); `activate N` raises the active one");
  auto* activate = schema->add_subcommand(
      "activate", "log the activation of schema version N, once every member's binary reads it (docs/cluster.md)");
  activate->add_option("version", out->version, "the schema version to activate")
      ->required()
      ->check(CLI::Range(uint32_t{1}, std::numeric_limits<uint32_t>::max()));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (const int usage = apply_client_security_flags(security, "hmdb cluster"); usage >= 0) return usage;
  std::string error;
  if (!parse_host_port(addr, &out->addr, &error) ||
      ((add->parsed() || replace->parsed()) && (!parse_host_port(client_addr, &out->client_addr, &error) ||
                         !parse_host_port(peer_addr, &out->peer_addr, &error)))) {
    std::cerr << "hmdb cluster: " << error << "\n";
    return 2;
  }
  if (replace->parsed()) {
    out->id = replace_new;
    if (out->id == out->old_id) {
      std::cerr << "hmdb cluster replace: the new node needs an id of its own (both are " << out->id << ")\n";
      return 2;
    }
  }
  out->verb = replace->parsed()     ? ClusterVerb::kReplace
              : status->parsed()    ? ClusterVerb::kStatus
              : members->parsed()   ? ClusterVerb::kMembers
              : add->parsed()       ? ClusterVerb::kAddLearner
              : promote->parsed()   ? ClusterVerb::kPromote
              : remove->parsed()    ? ClusterVerb::kRemove
              : transfer->parsed()  ? ClusterVerb::kTransfer
              : verify->parsed()    ? ClusterVerb::kVerify
              : activate->parsed()  ? ClusterVerb::kActivate
              : schema->parsed()    ? ClusterVerb::kSchema
                                    : ClusterVerb::kDigest;
  return -1;
}

int cluster_main(int argc, char** argv) {
  ClusterArgs args;
  const int usage = parse_cluster_args(argc, argv, &args);
  if (usage >= 0) return usage;
  const std::string id = std::to_string(args.id);
  switch (args.verb) {
    case ClusterVerb::kStatus:
      return run_status(args);
    case ClusterVerb::kMembers:
      return run_members(args);
    case ClusterVerb::kDigest:
      return run_digest(args);
    case ClusterVerb::kVerify:
      return run_verify(args);
    case ClusterVerb::kSchema:
      return run_schema(args);
    case ClusterVerb::kActivate:
      return run_activate(args);
    case ClusterVerb::kReplace:
      return run_replace(args);
    case ClusterVerb::kAddLearner:
      return run_change(
          args, {"CLUSTER", "ADDLEARNER", id, args.client_addr.to_string(), args.peer_addr.to_string()});
    case ClusterVerb::kPromote:
      return run_change(args, {"CLUSTER", "PROMOTE", id});
    case ClusterVerb::kRemove:
      return run_change(args, {"CLUSTER", "REMOVE", id});
    case ClusterVerb::kTransfer:
      return run_change(args, {"CLUSTER", "TRANSFER", id});
  }
  return 2;
}

int parse_snapshot_args(int argc, char** argv, SnapshotArgs* out) {
  CLI::App app{"hmdb snapshot: ask a running server for a snapshot and wait until it is durable", "hmdb snapshot"};
  std::string addr;
  std::string host_text = "127.0.0.1";
  uint16_t port = 7379;
  auto* addr_opt = app.add_option("--addr", addr,
                                  "HOST:PORT of the server (as `hmdb cluster --addr`; its TLS port with --tls); "
                                  "default: --host and --port");
  auto* port_opt = app.add_option("--port", port, "the server's port (its TLS port with --tls)")->capture_default_str();
  auto* host_opt =
      app.add_option("--host", host_text, "the server's address: IPv4, IPv6 or a host name")->capture_default_str();
  addr_opt->excludes(port_opt)->excludes(host_opt);
  ClientSecurityFlags security;
  add_client_security_flags(&app, &security, "the server");
  app.add_option("--timeout-ms", out->timeout_ms, "how long to wait for the snapshot")
      ->check(CLI::Range(1, 24 * 3600 * 1000))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (const int usage = apply_client_security_flags(security, "hmdb snapshot"); usage >= 0) return usage;
  std::string error;
  if (addr_opt->count() > 0) {
    if (!parse_host_port(addr, &out->server, &error)) {
      std::cerr << "hmdb snapshot: --addr: " << error << "\n";
      return 2;
    }
    return -1;
  }
  if (!parse_host(host_text, &out->server.host, &error)) {
    std::cerr << "hmdb snapshot: --host: " << error << "\n";
    return 2;
  }
  out->server.port = port;
  return -1;
}

int snapshot_main(int argc, char** argv) {
  SnapshotArgs args;
  if (const int usage = parse_snapshot_args(argc, argv, &args); usage >= 0) return usage;
  Connection c;
  Reply reply;
  std::string error;
  if (!c.open(args.server, args.timeout_ms, &error) || !c.call({"SNAPSHOT"}, &reply, &error)) {
    std::cerr << "hmdb snapshot: " << error << "\n";
    return 1;
  }
  if (reply.is_error()) {
    std::cerr << "hmdb snapshot: " << reply.text << "\n";
    return 1;
  }
  std::cout << reply.text << "\n";
  return 0;
}

}  // namespace hmdb::tools
