// server/acl_commands.cc — the ACL command (WHOAMI CAT SETUSER GETUSER DELUSER LIST USERS
// LOG LOAD SAVE HELP) over the node's users (core/acl.h), and ACL LOG's entries. Replies and
// errors are Redis 7.0's (acl.c: aclCommand), checked byte for byte against redis-server by
// apps.redis_compat_acl (tests/apps/redis_compat_acl.txt).
#include <algorithm>

#include "common/assert.h"
#include "server/node.h"

namespace hmdb::server {

namespace {

// ACL's subcommands and their arity (Redis 7.0's table, less GENPASS and DRYRUN).
struct AclSubcommand {
  std::string_view name;
  int arity;
};
constexpr AclSubcommand kAclSubcommands[] = {
    {"WHOAMI", 2}, {"CAT", -2},  {"SETUSER", -3}, {"GETUSER", 3}, {"DELUSER", -3}, {"LIST", 2},
    {"USERS", 2},  {"LOG", -2},  {"LOAD", 2},     {"SAVE", 2},    {"HELP", 2},
};

}  // namespace

int Node::acl_subcommand_arity(std::string_view sub) {
  for (const AclSubcommand& c : kAclSubcommands)
    if (iequals(c.name, sub)) return c.arity;
  return 0;
}

core::ShellResult Node::acl_command(Session& s, Args argv, uint64_t seq, std::string* out) {
  Reply r(out, s.client.protocol);
  const AclSubcommand* known = nullptr;
  for (const AclSubcommand& c : kAclSubcommands)
    if (iequals(c.name, argv[1])) known = &c;
  if (!known) {
    r.error("ERR unknown subcommand '" + std::string(argv[1].substr(0, 128)) + "'. Try ACL HELP.");
    return core::ShellResult::kReplied;
  }
  // ACL LOAD <text>: a follower's ACL LOAD, its ACL file's text, on its forwarding link
  // (Node::forward); no client may send it.
  const bool forwarded_load = known->name == "LOAD" && argv.size() == 3 && s.client.forwarder;
  if (!arity_ok(known->arity, argv.size()) && !forwarded_load) {
    r.error("ERR wrong number of arguments for 'acl|" + lowercase(known->name) + "' command");
    return core::ShellResult::kReplied;
  }
  const std::string_view sub = known->name;
  if (sub == "WHOAMI") {
    r.bulk(s.client.user ? std::string_view(s.client.user->name()) : kDefaultUser);
  } else if (sub == "CAT") {
    if (argv.size() > 3) {
      r.error("ERR unknown subcommand or wrong number of arguments for '" + std::string(argv[1]) + "'. Try ACL HELP.");
    } else if (argv.size() == 2) {
      r.array(acl::kCategoryCount);
      for (std::string_view name : acl::kCategoryNames) r.bulk(name);
    } else {
      const acl::Category cat = acl::category_named(lowercase(argv[2]));
      if (cat == acl::kCategoryCount) {
        r.error("ERR Unknown category '" + std::string(argv[2]) + "'");
      } else {
        std::vector<std::string> names;
        acl_access_.for_each([&](const core::AclCommand& c) {
          if (!(c.categories & acl::bit(cat))) return;
          std::string full(c.name);
          if (!c.subcommand.empty()) full += "|" + std::string(c.subcommand);
          names.push_back(std::move(full));
        });
        r.array(names.size());
        for (const std::string& n : names) r.bulk(n);
      }
    }
  } else if (sub == "SETUSER") {
    // Checked here for a quick error; the leader logs it and every node applies it, the
    // reply being the apply's (core/acl.h: apply_acl_change).
    const std::vector<std::string_view> rules(argv.begin() + 3, argv.end());
    if (const std::string error = acl_.check_set_user(argv[2], rules, acl_access_); !error.empty()) {
      r.error(error);
      return core::ShellResult::kReplied;
    }
    std::vector<std::string> words{std::string(argv[2])};
    for (std::string& rule : core::acl_rules_for_log(rules)) words.push_back(std::move(rule));  // no password in clear
    return log_acl_change(core::AclOp::kSetUser, std::move(words), s, seq, out);
  } else if (sub == "GETUSER") {
    const std::shared_ptr<core::AclUser> u = acl_.find(argv[2]);
    if (!u) {
      r.null();
    } else {
      r.map(6);
      r.bulk("flags");
      const std::vector<std::string> flags = u->flags();
      r.set(flags.size());
      for (const std::string& f : flags) r.bulk(f);
      r.bulk("passwords");
      const std::vector<std::string> hashes = u->password_hashes();
      r.array(hashes.size());
      for (const std::string& h : hashes) r.bulk(h);
      r.bulk("commands");
      r.bulk(u->commands_text());
      r.bulk("keys");
      r.bulk(u->keys_text());
      r.bulk("channels");
      r.bulk(u->channels_text());
      r.bulk("selectors");
      r.array(0);
    }
  } else if (sub == "DELUSER") {
    const std::vector<std::string_view> names(argv.begin() + 2, argv.end());
    if (std::find(names.begin(), names.end(), kDefaultUser) != names.end()) {
      r.error("ERR The 'default' user cannot be removed");
    } else {
      return log_acl_change(core::AclOp::kDelUser, std::vector<std::string>(names.begin(), names.end()), s, seq, out);
    }
  } else if (sub == "LIST") {
    r.array(acl_.users().size());
    for (const auto& [name, u] : acl_.users()) r.bulk(u->describe());
  } else if (sub == "USERS") {
    r.array(acl_.users().size());
    for (const auto& [name, u] : acl_.users()) r.bulk(name);
  } else if (sub == "LOG") {
    if (argv.size() > 3) {
      r.error("ERR unknown subcommand or wrong number of arguments for '" + std::string(argv[1]) + "'. Try ACL HELP.");
    } else if (argv.size() == 3 && iequals(argv[2], "RESET")) {
      acl_log_.clear();
      r.ok();
    } else {
      int64_t count = 10;  // Redis' default
      if (argv.size() == 3 && !parse_int64(argv[2], &count)) {
        r.error("ERR value is not an integer or out of range");
        return core::ShellResult::kReplied;
      }
      const size_t n = std::min<size_t>(acl_log_.size(), static_cast<size_t>(std::max<int64_t>(count, 0)));
      const uint64_t now = monotonic_ms();
      r.array(n);
      for (size_t i = 0; i < n; i++) {
        const AclLogEntry& e = acl_log_[i];
        r.map(7);
        r.bulk("count");
        r.integer(static_cast<int64_t>(e.count));
        r.bulk("reason");
        r.bulk(e.reason);
        r.bulk("context");
        r.bulk(e.context);
        r.bulk("object");
        r.bulk(e.object);
        r.bulk("username");
        r.bulk(e.user);
        r.bulk("age-seconds");
        r.double_value(static_cast<double>(now - e.created_ms) / 1000.0);
        r.bulk("client-info");
        r.bulk(e.client_info);
      }
    }
  } else if (forwarded_load) {
    // Checked by the follower that read it; checked again here, against this node's
    // commands, for the quick error.
    std::string text(argv[2]);
    core::AclUsers check;
    if (const std::string error = check.load(text, acl_access_); !error.empty()) {
      r.error("ERR the ACL file of the node that received ACL LOAD: " + error + " (no user was changed)");
      return core::ShellResult::kReplied;
    }
    return log_acl_change(core::AclOp::kLoad, {std::move(text)}, s, seq, out);
  } else if (options_.aclfile.empty() && (sub == "LOAD" || sub == "SAVE")) {
    r.error(kNoAclFileError);
  } else if (sub == "LOAD") {
    std::string text;
    if (const Status read = read_acl_file(&text); !read) {
      r.error("ERR " + read.message());
      return core::ShellResult::kReplied;
    }
    return log_acl_change(core::AclOp::kLoad, {std::move(text)}, s, seq, out);
  } else if (sub == "SAVE") {
    const Status saved = save_acl_file();
    if (saved) r.ok();
    else r.error("ERR There was an error trying to save the ACLs. Please check the server logs for more information");
  } else {  // HELP
    static constexpr std::string_view kHelp[] = {
        "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CAT [<category>]",
        "    List all commands that belong to <category>, or all command categories",
        "    when no category is specified.",
        "DELUSER <username> [<username> ...]",
        "    Delete a list of users.",
        "GETUSER <username>",
        "    Get the user's details.",
        "LIST",
        "    Show users details in config file format.",
        "LOAD",
        "    Reload users from the ACL file.",
        "LOG [<count> | RESET]",
        "    Show the ACL log entries.",
        "SAVE",
        "    Save the current config to the ACL file.",
        "SETUSER <username> <attribute> [<attribute> ...]",
        "    Create or modify a user with the specified attributes.",
        "USERS",
        "    List all the registered usernames.",
        "WHOAMI",
        "    Return the current connection username.",
        "HELP",
        "    Prints this help.",
    };
    r.array(std::size(kHelp));
    for (std::string_view line : kHelp) r.status(line);
  }
  return core::ShellResult::kReplied;
}

core::ShellResult Node::log_acl_change(core::AclOp op, std::vector<std::string> words, Session& s, uint64_t seq,
                                       std::string* out) {
  if (!replica_->leader()) {  // a forwarded one reached a node that no longer leads: sent again
    out->append(replica_->redirect_reply());
    return core::ShellResult::kReplied;
  }
  replica_->acl_change(op, words, s.id(), seq);
  return core::ShellResult::kWaitCluster;
}

Status Node::read_acl_file(std::string* text) {
  if (Status s = env_->read_file(options_.aclfile, text); !s)
    return Status::invalid_argument("--aclfile " + options_.aclfile + ": " + s.message());
  core::AclUsers check;  // a scratch set: nothing changes until the change applies
  if (const std::string error = check.load(*text, acl_access_); !error.empty())
    return Status::invalid_argument(options_.aclfile + ": " + error + " (no user was changed)");
  return Status::ok();
}

Status Node::load_acl_file() {
  std::string text;
  if (Status s = env_->read_file(options_.aclfile, &text); !s)
    return Status::invalid_argument("--aclfile " + options_.aclfile + ": " + s.message());
  // (requirepass stays the default user's password: AclUsers::pin_default_password.)
  if (const std::string error = acl_.load(text, acl_access_); !error.empty())
    return Status::invalid_argument(options_.aclfile + ": " + error + " (no user was changed)");
  return Status::ok();
}

Status Node::save_acl_file() {
  // Written whole to a temporary file, synced, renamed over the file and the directory
  // synced: a crash leaves the old file or the new one, never half of one.
  const std::string tmp = options_.aclfile + ".tmp";
  const size_t slash = options_.aclfile.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : options_.aclfile.substr(0, slash == 0 ? 1 : slash);
  std::unique_ptr<storage::WritableFile> f;
  Status s = env_->new_writable_file(tmp, &f);
  if (s) s = f->append(acl_.save());
  if (s) s = f->sync();
  if (f) {
    const Status closed = f->close();
    if (s) s = closed;
  }
  if (s) s = env_->rename_file(tmp, options_.aclfile);
  if (s) s = env_->sync_dir(dir);
  if (!s) log_line("ACL SAVE to {} failed: {}", options_.aclfile, s.message());
  return s;
}

void Node::acl_refused(const core::ClientSession& client, const core::AclDenial& denial) {
  const Session* s = find_session(client.id);
  if (!s) return;
  acl_log(*s, denial.reason, denial.object, client.user ? std::string_view(client.user->name()) : kDefaultUser);
}

void Node::acl_log(const Session& s, std::string_view reason, std::string_view object, std::string_view user) {
  const uint64_t now = monotonic_ms();
  const std::string_view context = s.client.transaction.multi ? "multi" : "toplevel";
  std::string info = client_info_line(s, wall_ms());
  for (auto it = acl_log_.begin(); it != acl_log_.end(); ++it) {
    if (it->reason == reason && it->context == context && it->object == object && it->user == user &&
        now - it->updated_ms < kAclLogGroupingMs) {
      AclLogEntry e = std::move(*it);
      acl_log_.erase(it);
      e.count++;
      e.updated_ms = now;
      e.client_info = std::move(info);
      acl_log_.push_front(std::move(e));  // the newest first, as Redis moves it to the head
      return;
    }
  }
  AclLogEntry e;
  e.reason = reason;
  e.context = context;
  e.object = object;
  e.user = user;
  e.client_info = std::move(info);
  e.created_ms = e.updated_ms = now;
  acl_log_.push_front(std::move(e));
  if (acl_log_.size() > kAclLogEntriesMax) acl_log_.pop_back();
}

}  // namespace hmdb::server
