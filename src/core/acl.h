// core/acl.h — users and what each may do, in Redis 7's ACL rule syntax (ACL SETUSER, an
// ACL file's `user` lines): a parser of rules, the matcher the replica checks every command
// against, and the descriptions ACL LIST and ACL GETUSER answer.
//
//   AclUser alice("alice");
//   alice.apply("on", catalog); alice.apply(">secret", catalog); alice.apply("+@read", catalog);
//   alice.apply("~cache:*", catalog);
//   alice.can_run({"get", "", acl::bit(acl::kRead) | ...})  -> true
//   alice.key_allowed("cache:1", kKeyRead)                  -> true
//
// Command rules are kept in the order given, each after a base (+@all or -@all), and a
// command is allowed by the last rule that names it or one of its categories: what Redis'
// bitmap of commands computes, but without a fixed list of commands, so that an app's
// commands and a newer schema version's are covered by the same rules. A rule that another
// overrides completely is dropped, and one that changes nothing is not kept, so the
// description stays as short as Redis' for the same rules (docs/security.md says where
// the two may still word it differently).
//
// Deterministic: no clock, no I/O, no randomness; passwords are kept as SHA-256 digests.
// Thread-safety: none.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hmdb/acl.h"

namespace hmdb::core {

// The user every connection starts as, as Redis names it.
inline constexpr std::string_view kDefaultUserName = "default";
// The nodes' forwarding links' own user (--cluster-secret; docs/security.md): never one of
// AclUsers' (SETUSER and LOAD refuse the name), so no rule can change it.
inline constexpr std::string_view kLinkUserName = "hmdb-forwarder";

// A command as rules see it: its name and, for a command with subcommands (CLUSTER, ACL,
// CONFIG, ...), the subcommand, both in lower case ("cluster", "info"); and its categories.
struct AclCommand {
  std::string_view name;
  std::string_view subcommand;  // empty: none
  acl::Categories categories = 0;
};

// Every command a rule may name: the shell's (with their subcommands) and the app's. A
// `+cmd` naming none of them is refused, as in Redis; ACL CAT lists them.
class AclCatalog {
 public:
  virtual ~AclCatalog() = default;
  virtual void for_each(const std::function<void(const AclCommand&)>& fn) const = 0;
};

// The commands the replica core answers itself (transactions, PUBLISH), with Redis'
// categories. HMDB.REQ is not one: the command it tags is checked.
struct EngineCommandAcl {
  std::string_view name;  // lower case
  acl::Categories categories;
};
inline constexpr EngineCommandAcl kEngineCommandAcl[] = {
    {"multi", acl::bit(acl::kFast) | acl::bit(acl::kTransaction)},
    {"exec", acl::bit(acl::kSlow) | acl::bit(acl::kTransaction)},
    {"discard", acl::bit(acl::kFast) | acl::bit(acl::kTransaction)},
    {"watch", acl::bit(acl::kFast) | acl::bit(acl::kTransaction)},
    {"unwatch", acl::bit(acl::kFast) | acl::bit(acl::kTransaction)},
    {"publish", acl::bit(acl::kPubSub) | acl::bit(acl::kFast)},
};
inline const EngineCommandAcl* engine_command_acl(std::string_view lower_name) {
  for (const EngineCommandAcl& e : kEngineCommandAcl)
    if (e.name == lower_name) return &e;
  return nullptr;
}

// Why a command was refused (ACL LOG's reason and object, Redis' words).
struct AclDenial {
  std::string error;        // the -NOPERM reply without '-'; "" if allowed
  std::string_view reason;  // "command", "key" or "channel"
  std::string object;       // the command ("set", "cluster|info"), the key or the channel
  bool denied() const { return !error.empty(); }
};

// Key permissions a command needs on a key (%R~ and %W~ grant them separately; ~ both).
inline constexpr uint8_t kKeyRead = 1;
inline constexpr uint8_t kKeyWrite = 2;
inline constexpr uint8_t kKeyReadWrite = kKeyRead | kKeyWrite;

using PasswordDigest = std::array<unsigned char, 32>;
PasswordDigest password_digest(std::string_view password);  // SHA-256

class AclUser {
 public:
  // A new user as Redis makes one: off, no password (and not nopass: nobody can log in),
  // no commands, no keys, no channels.
  explicit AclUser(std::string name) : name_(std::move(name)) {}
  // The default user before any rule: on, nopass, every command, key and channel.
  static AclUser default_user();

  // Applies one rule (ACL SETUSER's words, case-insensitive). Returns "" or Redis' reason
  // for refusing it (what follows "Error in ACL SETUSER modifier '...': "). A refused rule
  // may leave the user half changed: apply a user's rules to a copy, then keep the copy.
  std::string apply(std::string_view rule, const AclCatalog& catalog);

  const std::string& name() const { return name_; }
  bool enabled() const { return enabled_; }
  bool nopass() const { return nopass_; }
  // Every command, every key, every channel: nothing to check (the common case, kept in
  // one flag so that checking costs one test for such a user).
  bool permits_all() const { return permits_all_; }
  // DELUSER: the user is gone; its connections are closed at their next command.
  bool deleted() const { return deleted_; }
  void mark_deleted() {
    deleted_ = true;
    permits_all_ = false;
  }
  // requirepass (AclUsers::pin_default_password): this password and no other, not nopass.
  void set_only_password(const PasswordDigest& d) {
    passwords_.assign(1, d);
    nopass_ = false;
    update_permits_all();
  }

  // AUTH's check: the user is on and nopass or has this password (constant-time compare).
  bool check_password(std::string_view password) const;
  bool can_run(const AclCommand& c) const;
  // `access`: kKeyRead, kKeyWrite or both.
  bool key_allowed(std::string_view key, uint8_t access) const;
  // A channel (PUBLISH, SUBSCRIBE) matches a pattern of the user's; a pattern
  // (PSUBSCRIBE) must be one of the user's patterns literally, as in Redis.
  bool channel_allowed(std::string_view channel, bool is_pattern) const;

  // ACL LIST's line: "user alice on #<sha256> ~k* resetchannels &ch* -@all +get".
  std::string describe() const;
  // ACL GETUSER's fields.
  std::vector<std::string> flags() const;
  std::vector<std::string> password_hashes() const;  // lower-case hex
  std::string commands_text() const;
  std::string keys_text() const;
  std::string channels_text() const;

 private:
  struct Rule {
    enum Kind : uint8_t { kCategory, kCommand, kSubcommand } kind = kCommand;
    bool allow = true;
    acl::Category category = acl::kCategoryCount;
    std::string name, subcommand;  // lower case
    bool matches(const AclCommand& c) const;
    std::string text() const;
  };
  struct KeyPattern {
    std::string pattern;
    uint8_t access = kKeyReadWrite;
  };
  enum class Sanitize : uint8_t { kUnset, kSanitize, kSkip };

  std::string command_rule(std::string_view rule, const AclCatalog& catalog);
  std::string key_rule(std::string_view rule);
  std::string channel_rule(std::string_view rule);
  bool can_run_with(const std::vector<Rule>& rules, const AclCommand& c) const;
  void update_permits_all() {
    permits_all_ = !deleted_ && all_commands_ && rules_.empty() && all_keys_ && all_channels_;
  }

  std::string name_;
  bool enabled_ = false;
  bool nopass_ = false;
  bool deleted_ = false;
  Sanitize sanitize_ = Sanitize::kUnset;
  std::vector<PasswordDigest> passwords_;
  bool all_commands_ = false;  // the base the rules start from: +@all, or -@all
  std::vector<Rule> rules_;
  bool all_keys_ = false;
  std::vector<KeyPattern> keys_;
  bool all_channels_ = false;
  std::vector<std::string> channels_;
  bool permits_all_ = false;
};

// The users of a node (or, replicated, of a cluster): `default` always, and named ones.
class AclUsers {
 public:
  AclUsers();

  // ACL SETUSER name rules...: creates the user if it does not exist, then applies every
  // rule or none. Returns "" or the error reply without '-' (Redis' words).
  std::string set_user(std::string_view name, const std::vector<std::string_view>& rules, const AclCatalog& catalog);
  // ACL DELUSER: how many of `names` existed (and are gone). `default` cannot be removed
  // (the caller refuses it first, as Redis does).
  int delete_users(const std::vector<std::string_view>& names);
  // nullptr if there is no such user.
  std::shared_ptr<AclUser> find(std::string_view name) const;
  const std::shared_ptr<AclUser>& default_user() const { return default_; }
  // AUTH / HELLO AUTH: the user, if it exists, is on and the password is right.
  std::shared_ptr<AclUser> authenticate(std::string_view name, std::string_view password) const;
  // By name (ACL USERS, ACL LIST: Redis lists them sorted).
  const std::map<std::string, std::shared_ptr<AclUser>, std::less<>>& users() const { return users_; }

  // Replaces every user by those of `lines` (ACL LIST's lines, as an ACL file holds them):
  // all or nothing. On error returns "line N: why" and changes nothing. Users that keep
  // their name keep their object (their connections see the new rules); others are gone.
  std::string load(std::string_view text, const AclCatalog& catalog);
  // ACL LIST's lines, one per user, each ending in '\n': what load() reads back.
  std::string save() const;

  // SETUSER's check without changing anything: "" or the error set_user would answer.
  std::string check_set_user(std::string_view name, const std::vector<std::string_view>& rules,
                             const AclCatalog& catalog) const;

  // Replicated users (docs/security.md, "Users in a cluster"): true once a logged ACL change
  // applied here (or a snapshot holding users was loaded). Until then the users are the
  // node's own, from its ACL file; the first logged change carries the leader's (AclOp::kSeed).
  bool logged() const { return logged_; }
  void set_logged(bool logged) { logged_ = logged; }

  // requirepass: the default user's one password whatever the rules, the file or the log
  // say (the node's forwarding links log in with it); applied now and after every change.
  void pin_default_password(std::string_view password);

 private:
  void apply_pin();

  std::shared_ptr<AclUser> default_;
  std::map<std::string, std::shared_ptr<AclUser>, std::less<>> users_;
  bool logged_ = false;
  bool pinned_ = false;
  PasswordDigest pinned_digest_{};
};

// ACL changes are log items (core/batch.h, kItemAcl), applied by every node to its users so
// that every node holds the same users at the same log index (docs/decisions.md).
enum class AclOp : uint8_t {
  kSetUser = 1,  // words: the user name, then its rules (passwords as digests: acl_rules_for_log)
  kDelUser = 2,  // words: the names
  kLoad = 3,     // words: one text of ACL LIST lines (the ACL file the receiving node read)
  // words: one text, the proposing leader's users: loaded only if no ACL change applied
  // before (AclUsers::logged), so that the first change applies to the same users everywhere.
  kSeed = 4,
};

// The users logged ACL changes apply to, and the commands their rules may name. Both null:
// ACL items are answered and change nothing (the simulator, `hmdb dry-run`).
struct ReplicatedAcl {
  AclUsers* users = nullptr;
  const AclCatalog* catalog = nullptr;
  bool present() const { return users && catalog; }
};

// SETUSER's rules as the log keeps them: a password in clear (">pw", "<pw") becomes its
// SHA-256 ("#hex", "!hex"), which means the same to AclUser::apply.
std::vector<std::string> acl_rules_for_log(const std::vector<std::string_view>& rules);

// Applies a logged ACL change and returns its reply (RESP2 bytes: +OK, :n, or an error; the
// same bytes in RESP3). Deterministic: the same users, catalog and change give the same
// users and reply on every node. `words` as AclOp says (acl_item_valid holds).
std::string apply_acl_change(AclUsers& users, const AclCatalog& catalog, AclOp op,
                             const std::vector<std::string_view>& words);

// The users' digest for verify (core/digest_marks.h): a hash of save()'s lines, so equal
// users (rules and password digests) hash alike on every node.
uint64_t users_digest(const AclUsers& users);

// ACL SETUSER's error reply for a refused rule (without '-').
std::string acl_setuser_error(std::string_view rule, std::string_view reason);

}  // namespace hmdb::core
