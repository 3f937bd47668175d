// server/commands.cc — commands the shell answers itself (connection, introspection,
// snapshots): PING ECHO QUIT SELECT HELLO CLIENT COMMAND CONFIG INFO SNAPSHOT BGSAVE SAVE.
//
// They come before the app's commands, so an app cannot shadow them. Enough of each is
// implemented for redis-cli, redis-benchmark and common client libraries to connect.
#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include "server/logging.h"
#include "server/node.h"

namespace hmdb::server {

namespace {

constexpr std::string_view kVersion = "0.1.0";
// Some clients refuse servers that do not look like Redis >= 6: INFO and HELLO say this.
constexpr std::string_view kRedisCompatVersion = "7.0.0";

constexpr std::array<std::string_view, 15> kServerCommands = {
    "PING", "ECHO", "QUIT", "SELECT", "HELLO", "CLIENT", "COMMAND", "CONFIG", "INFO", "SNAPSHOT", "BGSAVE", "SAVE",
    "CLUSTER", "READONLY", "READWRITE"};

// ASCII only, inline: it runs for every command (is_server_command), so no libc call per byte.
char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool parse_i64(std::string_view s, int64_t* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

std::string arity_error(std::string_view name) {
  return "ERR wrong number of arguments for '" + lower(name) + "' command";
}

// Arity of the shell's own commands, Redis style (negative: at least).
int server_arity(std::string_view name) {
  if (iequal(name, "PING")) return -1;
  if (iequal(name, "ECHO")) return 2;
  if (iequal(name, "QUIT")) return -1;
  if (iequal(name, "SELECT")) return 2;
  if (iequal(name, "HELLO")) return -1;
  if (iequal(name, "CLIENT")) return -2;
  if (iequal(name, "COMMAND")) return -1;
  if (iequal(name, "CONFIG")) return -2;
  if (iequal(name, "INFO")) return -1;
  if (iequal(name, "CLUSTER")) return -2;
  if (iequal(name, "READONLY") || iequal(name, "READWRITE")) return 1;
  return -1;  // SNAPSHOT, BGSAVE, SAVE: extra words are ignored
}

// One entry of COMMAND's reply (Redis 7 layout: name, arity, flags, first key, last key,
// step, ACL categories, tips, key specs, subcommands).
void command_info(Reply& r, std::string_view name, int arity, std::string_view flag, bool has_key) {
  r.array(10);
  r.bulk(lower(name));
  r.integer(arity);
  r.array(1);
  r.status(flag);
  r.integer(has_key ? 1 : 0);
  r.integer(has_key ? 1 : 0);
  r.integer(has_key ? 1 : 0);
  r.array(0);
  r.array(0);
  r.array(0);
  r.array(0);
}

}  // namespace

bool Node::is_server_command(std::string_view name) const {
  for (auto c : kServerCommands)
    if (iequal(name, c)) return true;
  return false;
}

bool Node::is_snapshot_command(std::string_view name) {
  return iequal(name, "SNAPSHOT") || iequal(name, "SAVE") || iequal(name, "BGSAVE");
}

bool Node::is_quit(std::string_view name) { return iequal(name, "QUIT"); }

Node::RunResult Node::server_command(Session& s, std::span<const std::string_view> argv, std::string* out) {
  Reply r(out);
  const std::string_view name = argv[0];
  const int arity = server_arity(name);
  if (arity >= 0 ? argv.size() != static_cast<size_t>(arity) : argv.size() < static_cast<size_t>(-arity)) {
    r.error(arity_error(name));
    return RunResult::kReplied;
  }

  if (iequal(name, "PING")) {
    if (argv.size() == 1) r.status("PONG");
    else if (argv.size() == 2) r.bulk(argv[1]);
    else r.error(arity_error(name));
  } else if (iequal(name, "ECHO")) {
    r.bulk(argv[1]);
  } else if (iequal(name, "QUIT")) {
    r.ok();
    s.close_after_reply = true;
  } else if (iequal(name, "SELECT")) {
    int64_t db = 0;
    if (!parse_i64(argv[1], &db)) r.error("ERR value is not an integer or out of range");
    else if (db != 0) r.error("ERR DB index is out of range");
    else r.ok();
  } else if (iequal(name, "HELLO")) {
    if (argv.size() >= 2) {
      int64_t proto = 0;
      if (!parse_i64(argv[1], &proto)) {
        r.error("ERR Protocol version is not an integer or out of range");
        return RunResult::kReplied;
      }
      if (proto != 2) {
        r.error("NOPROTO sorry, this protocol version is not supported");
        return RunResult::kReplied;
      }
      for (size_t i = 2; i < argv.size(); i++) {
        if (iequal(argv[i], "AUTH") && i + 2 < argv.size()) {
          i += 2;  // no authentication configured: any credentials are accepted, as Redis does without requirepass
        } else if (iequal(argv[i], "SETNAME") && i + 1 < argv.size()) {
          s.name = std::string(argv[++i]);
        } else {
          r.error("ERR Syntax error in HELLO option '" + std::string(argv[i]) + "'");
          return RunResult::kReplied;
        }
      }
    }
    r.array(14);
    r.bulk("server");
    r.bulk("hmdb");
    r.bulk("version");
    r.bulk(kRedisCompatVersion);
    r.bulk("proto");
    r.integer(2);
    r.bulk("id");
    r.integer(static_cast<int64_t>(s.id));
    r.bulk("mode");
    r.bulk("standalone");
    r.bulk("role");
    r.bulk("master");
    r.bulk("modules");
    r.array(0);
  } else if (iequal(name, "CLIENT")) {
    std::string_view sub = argv[1];
    auto client_line = [&](const Session& c) {
      return fmt::format("id={} addr={} name={} age={} idle={} cmd={} qbuf={} obl={} pending={} lib-name={} lib-ver={}",
                         c.id, c.address, c.name, (realtime_now_ms() - c.created_ms) / 1000,
                         (realtime_now_ms() - c.last_command_ms) / 1000, c.commands, c.in.size(), c.unsent(),
                         c.pending.size(), c.lib_name, c.lib_version);
    };
    if (iequal(sub, "SETNAME") && argv.size() == 3) {
      if (std::any_of(argv[2].begin(), argv[2].end(), [](char c) { return c <= ' ' || c > '~'; })) {
        r.error("ERR Client names cannot contain spaces, newlines or special characters.");
      } else {
        s.name = std::string(argv[2]);
        r.ok();
      }
    } else if (iequal(sub, "GETNAME") && argv.size() == 2) {
      if (s.name.empty()) r.null();
      else r.bulk(s.name);
    } else if (iequal(sub, "ID") && argv.size() == 2) {
      r.integer(static_cast<int64_t>(s.id));
    } else if (iequal(sub, "INFO") && argv.size() == 2) {
      r.bulk(client_line(s) + "\n");
    } else if (iequal(sub, "LIST")) {
      std::string all;
      for (const auto& [id, c] : sessions_) all += client_line(*c) + "\n";
      r.bulk(all);
    } else if (iequal(sub, "SETINFO") && argv.size() == 4) {
      if (iequal(argv[2], "LIB-NAME")) {
        s.lib_name = std::string(argv[3]);
        r.ok();
      } else if (iequal(argv[2], "LIB-VER")) {
        s.lib_version = std::string(argv[3]);
        r.ok();
      } else {
        r.error("ERR Unrecognized option '" + std::string(argv[2]) + "'");
      }
    } else {
      r.error("ERR unknown subcommand or wrong number of arguments for '" + std::string(sub) +
              "'. Try CLIENT SETNAME|GETNAME|ID|INFO|LIST|SETINFO.");
    }
  } else if (iequal(name, "COMMAND")) {
    command_command(argv, out);
  } else if (iequal(name, "CONFIG")) {
    if (iequal(argv[1], "GET") && argv.size() >= 3) {
      const std::string fsync = options_.durability == Durability::kAlways     ? "always"
                                : options_.durability == Durability::kPeriodic ? "everysec"
                                                                               : "no";
      // What redis-benchmark and clients ask for, answered in Redis' terms.
      const std::vector<std::pair<std::string, std::string>> params = {
          {"save", ""},
          {"appendonly", options_.durability == Durability::kNone ? "no" : "yes"},
          {"appendfsync", fsync},
          {"port", std::to_string(port_)},
          {"bind", options_.bind},
          {"dir", options_.dir},
          {"maxclients", std::to_string(options_.max_clients)},
          {"proto-max-bulk-len", std::to_string(options_.max_bulk_bytes)},
          {"databases", "1"},
          {"hmdb-durability", durability_name(options_.durability)},
          {"hmdb-fsync-interval-ms", std::to_string(options_.fsync_interval_ms)},
          {"hmdb-snapshot-log-bytes", std::to_string(options_.snapshot_log_bytes)},
      };
      std::vector<const std::pair<std::string, std::string>*> hits;
      for (const auto& p : params) {
        for (size_t i = 2; i < argv.size(); i++) {
          std::string pattern(argv[i]);
          if (fnmatch(pattern.c_str(), p.first.c_str(), FNM_CASEFOLD) == 0) {
            hits.push_back(&p);
            break;
          }
        }
      }
      r.array(hits.size() * 2);
      for (const auto* p : hits) {
        r.bulk(p->first);
        r.bulk(p->second);
      }
    } else if (iequal(argv[1], "SET")) {
      r.error("ERR CONFIG SET is not supported: restart `hmdb serve` with the flag (see hmdb serve --help)");
    } else if (iequal(argv[1], "RESETSTAT") && argv.size() == 2) {
      uint64_t start = stats_.start_ms;
      stats_ = Stats{};
      stats_.start_ms = start;
      r.ok();
    } else {
      r.error("ERR unknown subcommand or wrong number of arguments for '" + std::string(argv[1]) +
              "'. Try CONFIG GET|RESETSTAT.");
    }
  } else if (iequal(name, "INFO")) {
    r.bulk(info_text(argv.size() >= 2 ? argv[1] : std::string_view("default")));
  } else if (iequal(name, "READONLY") || iequal(name, "READWRITE")) {
    // READONLY: this client accepts a follower's possibly stale state for its queries.
    s.readonly = iequal(name, "READONLY");
    r.ok();
  } else if (iequal(name, "CLUSTER")) {
    const std::string_view sub = argv[1];
    if (iequal(sub, "MEMBERS") && argv.size() == 2) {
      r.bulk(members_text());
    } else if (iequal(sub, "DIGEST") && argv.size() == 2) {
      r.bulk(fmt::format("{} {:016x}", applied_index_, app_->digest()));
    } else if (iequal(sub, "INFO") && argv.size() == 2) {
      r.bulk(replication_info());
    } else {
      r.error("ERR unknown subcommand or wrong number of arguments for '" + std::string(sub) +
              "'. Try CLUSTER MEMBERS|DIGEST|INFO|ADDLEARNER|PROMOTE|REMOVE|TRANSFER.");
    }
  } else if (iequal(name, "SNAPSHOT") || iequal(name, "SAVE")) {
    return RunResult::kWaitSnapshot;  // the reply comes when the snapshot is durable
  } else if (iequal(name, "BGSAVE")) {
    r.status("Background saving started");
    start_snapshot();
  }
  return RunResult::kReplied;
}

void Node::command_command(std::span<const std::string_view> argv, std::string* out) {
  Reply r(out);
  // The shell's own commands, then the app's (StateMachine::describe_commands()).
  const std::vector<CommandDescription> app_commands = app_->describe_commands();
  auto app_info = [&](const CommandDescription& c) {
    command_info(r, c.name, c.arity, c.kind == CommandKind::kWrite ? "write" : "readonly", true);
  };
  const size_t total = kServerCommands.size() + app_commands.size();
  if (argv.size() == 1) {
    r.array(total);
    for (auto c : kServerCommands) command_info(r, c, server_arity(c), "fast", false);
    for (const auto& c : app_commands) app_info(c);
  } else if (iequal(argv[1], "COUNT")) {
    r.integer(static_cast<int64_t>(total));
  } else if (iequal(argv[1], "DOCS")) {
    r.array(0);  // redis-cli falls back to its built-in help
  } else if (iequal(argv[1], "LIST")) {
    r.array(total);
    for (auto c : kServerCommands) r.bulk(lower(c));
    for (const auto& c : app_commands) r.bulk(lower(c.name));
  } else if (iequal(argv[1], "INFO")) {
    r.array(argv.size() - 2);
    for (size_t i = 2; i < argv.size(); i++) {
      if (is_server_command(argv[i])) {
        command_info(r, argv[i], server_arity(argv[i]), "fast", false);
        continue;
      }
      auto it = std::find_if(app_commands.begin(), app_commands.end(),
                             [&](const CommandDescription& c) { return iequal(c.name, argv[i]); });
      if (it == app_commands.end()) r.null_array();
      else app_info(*it);
    }
  } else {
    r.error("ERR unknown subcommand '" + std::string(argv[1]) + "'. Try COMMAND COUNT|DOCS|INFO|LIST.");
  }
}

std::string Node::info_text(std::string_view section) {
  const bool all = iequal(section, "all") || iequal(section, "everything") || iequal(section, "default");
  auto want = [&](std::string_view name) { return all || iequal(section, name); };
  const DiskStats ds = disk_ ? disk_->stats() : DiskStats{};
  const uint64_t now = realtime_now_ms();
  std::string t;
  auto line = [&t](std::string_view k, const auto& v) { t += fmt::format("{}:{}\r\n", k, v); };

  if (want("server")) {
    t += "# Server\r\n";
    line("hmdb_version", kVersion);
    line("redis_version", kRedisCompatVersion);
    line("redis_mode", "standalone");
    line("app", app_->app_name());
    line("schema_version", app_->schema_version());
    line("process_id", ::getpid());
    line("tcp_port", port_);
    line("bind", options_.bind);
    line("data_dir", options_.dir);
    line("uptime_in_seconds", (now - stats_.start_ms) / 1000);
    t += "\r\n";
  }
  if (want("clients")) {
    t += "# Clients\r\n";
    line("connected_clients", sessions_.size());
    line("maxclients", options_.max_clients);
    line("client_output_limit_bytes", kClientOutputLimitBytes);
    t += "\r\n";
  }
  if (want("persistence")) {
    t += "# Persistence\r\n";
    line("durability", durability_name(options_.durability));
    line("fsync_interval_ms", options_.fsync_interval_ms);
    line("log_bytes_since_snapshot", log_bytes_since_snapshot_);
    line("snapshot_log_bytes", options_.snapshot_log_bytes);
    line("snapshot_in_progress", snapshot_pid_ > 0 ? 1 : 0);
    line("snapshots_taken", stats_.snapshots);
    line("snapshot_failures", stats_.snapshot_failures);
    line("last_snapshot_index", stats_.last_snapshot_index);
    line("last_snapshot_status", stats_.last_snapshot_status);
    line("last_snapshot_duration_ms", stats_.last_snapshot_ms);
    line("fork_stall_last_us", stats_.fork_last_us);
    line("fork_stall_max_us", stats_.fork_max_us);
    line("disk_rounds", ds.rounds);
    line("disk_fsyncs", ds.syncs);
    line("disk_bytes_written", ds.bytes);
    line("fsync_last_us", ds.last_sync_us);
    line("fsync_max_us", ds.max_sync_us);
    line("disk_queue_bytes", disk_ ? disk_->queued_bytes() : 0);
    line("recovery_entries_replayed", stats_.recovered_entries);
    line("recovery_ms", stats_.recovery_ms);
    t += "\r\n";
  }
  if (want("replication")) {
    t += "# Replication\r\n";
    t += replication_info();
    t += "\r\n";
  }
  if (want("stats")) {
    t += "# Stats\r\n";
    line("total_connections_received", stats_.connections_received);
    line("rejected_connections", stats_.rejected_connections);
    line("total_commands_processed", stats_.commands);
    line("total_writes", stats_.writes);
    line("total_batches", stats_.batches);
    line("protocol_errors", stats_.protocol_errors);
    line("output_limit_disconnects", stats_.output_limit_disconnects);
    line("busy_refusals", stats_.busy_refusals);
    line("loop_turn_max_ms", stats_.loop_turn_max_ms);
    line("slow_turns", stats_.slow_turns);
    t += "\r\n";
  }
  if (want("keyspace") || want("app")) {
    t += "# App\r\n";
    t += app_->info();
    if (!t.empty() && t.back() != '\n') t += "\r\n";
    t += "\r\n";
  }
  if (iequal(section, "digest")) {
    // Not in the default INFO: hashing a large state takes time on the event loop.
    t += "# Digest\r\n";
    line("state_digest", fmt::format("{:016x}", app_->digest()));
    line("applied_index", applied_index_);
    t += "\r\n";
  }
  return t;
}

}  // namespace hmdb::server
