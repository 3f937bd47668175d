// core/acl.cc — ACL users: rules, checks, descriptions (see acl.h). The error texts are
// Redis 7.0's (acl.c: ACLSetUser, ACLSetUserStringError).
#include "core/acl.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <xxhash.h>

#include <algorithm>

#include "core/pubsub.h"
#include "hmdb/text.h"

namespace hmdb::core {

namespace {

constexpr std::string_view kSyntaxError = "Syntax error";
constexpr std::string_view kReservedName =
    "ERR the user name 'hmdb-forwarder' is reserved for the nodes' forwarding links (--cluster-secret)";
constexpr std::string_view kUnknownCommand = "Unknown command or category name in ACL";
constexpr std::string_view kNoSuchPassword = "The password you are trying to remove from the user does not exist";
constexpr std::string_view kBadHash =
    "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";
constexpr std::string_view kKeyAfterAll =
    "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try "
    "'resetkeys' to start with an empty list of patterns";
constexpr std::string_view kChannelAfterAll =
    "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. "
    "Try 'resetchannels' to start with an empty list of channels";

std::string hex(const PasswordDigest& d) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(64);
  for (unsigned char c : d) {
    s += kDigits[c >> 4];
    s += kDigits[c & 15];
  }
  return s;
}

bool parse_hex(std::string_view text, PasswordDigest* out) {
  if (text.size() != 64) return false;
  for (size_t i = 0; i < 64; i++) {
    const char c = text[i];
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else return false;
    if (i % 2 == 0) (*out)[i / 2] = static_cast<unsigned char>(v << 4);
    else (*out)[i / 2] |= static_cast<unsigned char>(v);
  }
  return true;
}

// Blanks would split a name or a pattern in ACL LIST's line and the ACL file (Redis refuses
// only spaces and NUL in names, and nothing in patterns: its file can then be unreadable).
bool has_blank(std::string_view s) { return s.find_first_of(std::string_view(" \t\r\n\0", 5)) != std::string_view::npos; }

bool valid_user_name(std::string_view name) { return !name.empty() && !has_blank(name); }

// Splits an ACL LIST line into words (no quoting: a user's rules hold no spaces).
std::vector<std::string_view> words_of(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
      i++;
      continue;
    }
    size_t end = i;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != '\r') end++;
    out.push_back(line.substr(i, end - i));
    i = end;
  }
  return out;
}

}  // namespace

PasswordDigest password_digest(std::string_view password) {
  PasswordDigest d{};
  SHA256(reinterpret_cast<const unsigned char*>(password.data()), password.size(), d.data());
  return d;
}

std::string acl_setuser_error(std::string_view rule, std::string_view reason) {
  return "ERR Error in ACL SETUSER modifier '" + std::string(rule) + "': " + std::string(reason);
}

// ---------------------------------------------------------------------------------------
// AclUser

AclUser AclUser::default_user() {
  AclUser u{std::string(kDefaultUserName)};
  u.enabled_ = true;
  u.nopass_ = true;
  u.all_commands_ = true;
  u.all_keys_ = true;
  u.all_channels_ = true;
  u.update_permits_all();
  return u;
}

bool AclUser::Rule::matches(const AclCommand& c) const {
  switch (kind) {
    case kCategory: return (c.categories & acl::bit(category)) != 0;
    case kCommand: return c.name == name;
    case kSubcommand: return c.name == name && c.subcommand == subcommand;
  }
  return false;
}

std::string AclUser::Rule::text() const {
  std::string t(1, allow ? '+' : '-');
  if (kind == kCategory) return t + "@" + std::string(acl::kCategoryNames[category]);
  t += name;
  if (kind == kSubcommand) t += "|" + subcommand;
  return t;
}

bool AclUser::can_run_with(const std::vector<Rule>& rules, const AclCommand& c) const {
  bool allowed = all_commands_;
  for (const Rule& r : rules)
    if (r.matches(c)) allowed = r.allow;
  return allowed;
}

bool AclUser::can_run(const AclCommand& c) const { return can_run_with(rules_, c); }

bool AclUser::key_allowed(std::string_view key, uint8_t access) const {
  if (all_keys_) return true;
  // Each permission may come from a different pattern (%R~a* %W~*b grants both on "ab").
  uint8_t granted = 0;
  for (const KeyPattern& p : keys_) {
    if ((p.access & access & ~granted) == 0) continue;
    if (glob_match(p.pattern, key)) granted |= p.access;
    if ((granted & access) == access) return true;
  }
  return false;
}

bool AclUser::channel_allowed(std::string_view channel, bool is_pattern) const {
  if (all_channels_) return true;
  for (const std::string& p : channels_)
    if (is_pattern ? p == channel : glob_match(p, channel)) return true;
  return false;
}

bool AclUser::check_password(std::string_view password) const {
  if (!enabled_) return false;
  if (nopass_) return true;
  // Hashing first makes the comparison's length fixed; CRYPTO_memcmp's time does not
  // depend on where the digests differ.
  const PasswordDigest d = password_digest(password);
  bool ok = false;
  for (const PasswordDigest& p : passwords_) ok |= CRYPTO_memcmp(d.data(), p.data(), d.size()) == 0;
  return ok;
}

std::string AclUser::apply(std::string_view rule, const AclCatalog& catalog) {
  std::string error;
  const std::string lower = lowercase(rule);
  if (lower == "on") {
    enabled_ = true;
  } else if (lower == "off") {
    enabled_ = false;
  } else if (lower == "nopass") {
    nopass_ = true;
    passwords_.clear();
  } else if (lower == "resetpass") {
    nopass_ = false;
    passwords_.clear();
  } else if (lower == "sanitize-payload") {
    sanitize_ = Sanitize::kSanitize;
  } else if (lower == "skip-sanitize-payload") {
    sanitize_ = Sanitize::kSkip;
  } else if (lower == "allkeys") {
    all_keys_ = true;
    keys_.clear();
  } else if (lower == "resetkeys") {
    all_keys_ = false;
    keys_.clear();
  } else if (lower == "allchannels") {
    all_channels_ = true;
    channels_.clear();
  } else if (lower == "resetchannels") {
    all_channels_ = false;
    channels_.clear();
  } else if (lower == "allcommands" || lower == "+@all") {
    all_commands_ = true;
    rules_.clear();
  } else if (lower == "nocommands" || lower == "-@all") {
    all_commands_ = false;
    rules_.clear();
  } else if (lower == "reset") {
    // Redis 7.0: resetpass resetkeys resetchannels off -@all sanitize-payload.
    nopass_ = false;
    passwords_.clear();
    all_keys_ = false;
    keys_.clear();
    all_channels_ = false;
    channels_.clear();
    enabled_ = false;
    all_commands_ = false;
    rules_.clear();
    sanitize_ = Sanitize::kSanitize;
  } else if (!rule.empty() && rule[0] == '>') {
    const PasswordDigest d = password_digest(rule.substr(1));
    if (std::find(passwords_.begin(), passwords_.end(), d) == passwords_.end()) passwords_.push_back(d);
    nopass_ = false;
  } else if (!rule.empty() && rule[0] == '#') {
    PasswordDigest d{};
    if (!parse_hex(rule.substr(1), &d)) return std::string(kBadHash);
    if (std::find(passwords_.begin(), passwords_.end(), d) == passwords_.end()) passwords_.push_back(d);
    nopass_ = false;
  } else if (!rule.empty() && (rule[0] == '<' || rule[0] == '!')) {
    PasswordDigest d{};
    if (rule[0] == '<') d = password_digest(rule.substr(1));
    else if (!parse_hex(rule.substr(1), &d)) return std::string(kBadHash);
    auto it = std::find(passwords_.begin(), passwords_.end(), d);
    if (it == passwords_.end()) return std::string(kNoSuchPassword);
    passwords_.erase(it);
  } else if (!rule.empty() && (rule[0] == '~' || rule[0] == '%')) {
    error = key_rule(rule);
  } else if (!rule.empty() && rule[0] == '&') {
    error = channel_rule(rule);
  } else if (!rule.empty() && (rule[0] == '+' || rule[0] == '-')) {
    error = command_rule(rule, catalog);
  } else {
    error = std::string(kSyntaxError);
  }
  update_permits_all();
  return error;
}

std::string AclUser::key_rule(std::string_view rule) {
  uint8_t access = kKeyReadWrite;
  size_t at = 1;
  if (rule[0] == '%') {
    access = 0;
    for (; at < rule.size() && rule[at] != '~'; at++) {
      const char c = ascii_upper(rule[at]);
      if (c == 'R') access |= kKeyRead;
      else if (c == 'W') access |= kKeyWrite;
      else return std::string(kSyntaxError);
    }
    if (access == 0 || at == rule.size()) return std::string(kSyntaxError);
    at++;  // the '~'
  }
  if (all_keys_) return std::string(kKeyAfterAll);
  const std::string_view pattern = rule.substr(at);
  if (has_blank(pattern)) return std::string(kSyntaxError);
  if (pattern == "*" && access == kKeyReadWrite) {
    all_keys_ = true;
    keys_.clear();
    return {};
  }
  for (KeyPattern& p : keys_) {
    if (p.pattern == pattern) {
      p.access |= access;
      // %R~* and %W~* together are "~*": every key, as allkeys. Redis 7.0 keeps them as a
      // pattern beside the others and describes the user as "~* %W~a", a text that ACL LOAD
      // refuses (a pattern after "~*"), so that a node would not start again on its saved
      // aclfile (acl_fuzz found it; corpus seed setuser-read-write-star-merge;
      // docs/security.md lists the difference).
      if (p.pattern == "*" && p.access == kKeyReadWrite) {
        all_keys_ = true;
        keys_.clear();
      }
      return {};
    }
  }
  keys_.push_back(KeyPattern{std::string(pattern), access});
  return {};
}

std::string AclUser::channel_rule(std::string_view rule) {
  if (all_channels_) return std::string(kChannelAfterAll);
  const std::string_view pattern = rule.substr(1);
  if (has_blank(pattern)) return std::string(kSyntaxError);
  if (pattern == "*") {
    all_channels_ = true;
    channels_.clear();
    return {};
  }
  if (std::find(channels_.begin(), channels_.end(), pattern) == channels_.end()) channels_.emplace_back(pattern);
  return {};
}

std::string AclUser::command_rule(std::string_view rule, const AclCatalog& catalog) {
  Rule r;
  r.allow = rule[0] == '+';
  const std::string body = lowercase(rule.substr(1));
  if (!body.empty() && body[0] == '@') {
    r.kind = Rule::kCategory;
    r.category = acl::category_named(std::string_view(body).substr(1));
    if (r.category == acl::kCategoryCount) return std::string(kUnknownCommand);
  } else {
    const size_t bar = body.find('|');
    if (bar != std::string::npos) {
      if (bar == 0 || bar + 1 == body.size() || body.find('|', bar + 1) != std::string::npos)
        return std::string(kSyntaxError);
      r.kind = Rule::kSubcommand;
      r.name = body.substr(0, bar);
      r.subcommand = body.substr(bar + 1);
    } else {
      r.kind = Rule::kCommand;
      r.name = body;
    }
    bool known = false;
    catalog.for_each([&](const AclCommand& c) {
      if (c.name == r.name && (r.kind == Rule::kCommand || c.subcommand == r.subcommand)) known = true;
    });
    if (!known) return std::string(kUnknownCommand);
  }
  // Drop the earlier rules this one overrides wherever they applied: then a rule that
  // changes no command's permission is not kept either.
  std::erase_if(rules_, [&](const Rule& old) {
    switch (r.kind) {
      case Rule::kCategory:
        if (old.kind == Rule::kCategory) return old.category == r.category;
        {
          // A command rule goes if every command it names is in the category.
          bool all_in = true, any = false;
          catalog.for_each([&](const AclCommand& c) {
            if (!old.matches(c) || old.kind == Rule::kCategory) return;
            any = true;
            if (!r.matches(c)) all_in = false;
          });
          return any && all_in;
        }
      case Rule::kCommand: return old.kind != Rule::kCategory && old.name == r.name;
      case Rule::kSubcommand: return old.kind == Rule::kSubcommand && old.name == r.name && old.subcommand == r.subcommand;
    }
    return false;
  });
  std::vector<Rule> with = rules_;
  with.push_back(r);
  bool changes = false;
  catalog.for_each([&](const AclCommand& c) {
    if (!changes && can_run_with(with, c) != can_run_with(rules_, c)) changes = true;
  });
  if (changes) rules_ = std::move(with);
  return {};
}

std::vector<std::string> AclUser::flags() const {
  std::vector<std::string> f{enabled_ ? "on" : "off"};
  if (nopass_) f.emplace_back("nopass");
  if (sanitize_ == Sanitize::kSanitize) f.emplace_back("sanitize-payload");
  if (sanitize_ == Sanitize::kSkip) f.emplace_back("skip-sanitize-payload");
  return f;
}

std::vector<std::string> AclUser::password_hashes() const {
  std::vector<std::string> out;
  for (const PasswordDigest& d : passwords_) out.push_back(hex(d));
  return out;
}

std::string AclUser::commands_text() const {
  std::string t = all_commands_ ? "+@all" : "-@all";
  for (const Rule& r : rules_) t += " " + r.text();
  return t;
}

std::string AclUser::keys_text() const {
  if (all_keys_) return "~*";
  std::string t;
  for (const KeyPattern& p : keys_) {
    if (!t.empty()) t += ' ';
    t += p.access == kKeyReadWrite ? "~" : p.access == kKeyRead ? "%R~" : "%W~";
    t += p.pattern;
  }
  return t;
}

std::string AclUser::channels_text() const {
  if (all_channels_) return "&*";
  std::string t;
  for (const std::string& c : channels_) {
    if (!t.empty()) t += ' ';
    t += "&" + c;
  }
  return t;
}

std::string AclUser::describe() const {
  std::string d = "user " + name_;
  for (const std::string& f : flags()) d += " " + f;
  for (const std::string& h : password_hashes()) d += " #" + h;
  if (const std::string k = keys_text(); !k.empty()) d += " " + k;
  d += all_channels_ ? " &*" : " resetchannels";
  if (!all_channels_)
    for (const std::string& c : channels_) d += " &" + c;
  d += " " + commands_text();
  return d;
}

// ---------------------------------------------------------------------------------------
// AclUsers

AclUsers::AclUsers() : default_(std::make_shared<AclUser>(AclUser::default_user())) {
  users_.emplace(std::string(kDefaultUserName), default_);
}

std::string AclUsers::set_user(std::string_view name, const std::vector<std::string_view>& rules,
                               const AclCatalog& catalog) {
  if (!valid_user_name(name)) return "ERR Usernames can't contain spaces or null characters";
  if (name == kLinkUserName) return std::string(kReservedName);
  auto it = users_.find(name);
  AclUser copy = it != users_.end() ? *it->second : AclUser(std::string(name));
  for (std::string_view rule : rules) {
    const std::string why = copy.apply(rule, catalog);
    if (!why.empty()) return acl_setuser_error(rule, why);
  }
  if (it != users_.end()) *it->second = std::move(copy);  // in place: its connections see the new rules
  else users_.emplace(std::string(name), std::make_shared<AclUser>(std::move(copy)));
  if (name == kDefaultUserName) apply_pin();
  return {};
}

int AclUsers::delete_users(const std::vector<std::string_view>& names) {
  int n = 0;
  for (std::string_view name : names) {
    if (name == kDefaultUserName) continue;
    auto it = users_.find(name);
    if (it == users_.end()) continue;
    it->second->mark_deleted();
    users_.erase(it);
    n++;
  }
  return n;
}

std::shared_ptr<AclUser> AclUsers::find(std::string_view name) const {
  auto it = users_.find(name);
  return it == users_.end() ? nullptr : it->second;
}

std::shared_ptr<AclUser> AclUsers::authenticate(std::string_view name, std::string_view password) const {
  auto u = find(name);
  if (!u || !u->check_password(password)) return nullptr;
  return u;
}

uint64_t users_digest(const AclUsers& users) {
  const std::string lines = users.save();
  return XXH3_64bits(lines.data(), lines.size());
}

std::string AclUsers::save() const {
  std::string out;
  for (const auto& [name, u] : users_) out += u->describe() + "\n";
  return out;
}

std::string AclUsers::check_set_user(std::string_view name, const std::vector<std::string_view>& rules,
                                     const AclCatalog& catalog) const {
  if (!valid_user_name(name)) return "ERR Usernames can't contain spaces or null characters";
  if (name == kLinkUserName) return std::string(kReservedName);
  auto it = users_.find(name);
  AclUser copy = it != users_.end() ? *it->second : AclUser(std::string(name));
  for (std::string_view rule : rules) {
    const std::string why = copy.apply(rule, catalog);
    if (!why.empty()) return acl_setuser_error(rule, why);
  }
  return {};
}

void AclUsers::pin_default_password(std::string_view password) {
  pinned_ = true;
  pinned_digest_ = password_digest(password);
  apply_pin();
}

void AclUsers::apply_pin() {
  if (pinned_) default_->set_only_password(pinned_digest_);
}

std::vector<std::string> acl_rules_for_log(const std::vector<std::string_view>& rules) {
  std::vector<std::string> out;
  out.reserve(rules.size());
  for (std::string_view rule : rules) {
    if (!rule.empty() && (rule[0] == '>' || rule[0] == '<')) {
      out.push_back((rule[0] == '>' ? "#" : "!") + hex(password_digest(rule.substr(1))));
    } else {
      out.emplace_back(rule);
    }
  }
  return out;
}

std::string apply_acl_change(AclUsers& users, const AclCatalog& catalog, AclOp op,
                             const std::vector<std::string_view>& words) {
  auto error = [](std::string_view e) { return "-" + std::string(e) + "\r\n"; };
  switch (op) {
    case AclOp::kSetUser: {
      const std::vector<std::string_view> rules(words.begin() + 1, words.end());
      const std::string e = users.set_user(words[0], rules, catalog);
      if (!e.empty()) return error(e);
      users.set_logged(true);
      return "+OK\r\n";
    }
    case AclOp::kDelUser: {
      // `default` is refused as a whole, as Redis does, before anything is removed.
      if (std::find(words.begin(), words.end(), kDefaultUserName) != words.end())
        return error("ERR The 'default' user cannot be removed");
      const int n = users.delete_users(words);
      users.set_logged(true);
      return ":" + std::to_string(n) + "\r\n";
    }
    case AclOp::kSeed:
      if (users.logged()) return "+OK\r\n";  // a change applied before: the users are the cluster's already
      [[fallthrough]];
    case AclOp::kLoad: {
      const std::string e = users.load(words[0], catalog);
      if (!e.empty()) return error("ERR " + e + " (no user was changed)");
      users.set_logged(true);
      return "+OK\r\n";
    }
  }
  return error("ERR unknown ACL change");
}

std::string AclUsers::load(std::string_view text, const AclCatalog& catalog) {
  std::map<std::string, AclUser, std::less<>> loaded;
  size_t line_no = 0;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    line_no++;
    const std::vector<std::string_view> words = words_of(line);
    if (words.empty() || words[0][0] == '#') continue;
    auto fail = [&](const std::string& why) { return "line " + std::to_string(line_no) + ": " + why; };
    if (words[0] != "user" || words.size() < 2) return fail("should start with user keyword");
    if (!valid_user_name(words[1])) return fail("Usernames can't contain spaces or null characters");
    if (words[1] == kLinkUserName) return fail(std::string(kReservedName).substr(4));  // (without "ERR ")
    if (loaded.count(words[1])) return fail("duplicate user '" + std::string(words[1]) + "' found");
    AclUser u{std::string(words[1])};
    for (size_t i = 2; i < words.size(); i++) {
      const std::string why = u.apply(words[i], catalog);
      if (!why.empty()) return fail("Error in user declaration '" + std::string(words[i]) + "': " + why);
    }
    loaded.emplace(std::string(words[1]), std::move(u));
  }
  if (!loaded.count(kDefaultUserName)) loaded.emplace(std::string(kDefaultUserName), AclUser::default_user());
  // Users that stay keep their objects; the others are gone (their connections close).
  for (auto it = users_.begin(); it != users_.end();) {
    if (loaded.count(it->first)) {
      ++it;
    } else {
      it->second->mark_deleted();
      it = users_.erase(it);
    }
  }
  for (auto& [name, u] : loaded) {
    auto it = users_.find(name);
    if (it != users_.end()) *it->second = std::move(u);
    else users_.emplace(name, std::make_shared<AclUser>(std::move(u)));
  }
  default_ = users_.find(kDefaultUserName)->second;
  apply_pin();
  return {};
}

}  // namespace hmdb::core
