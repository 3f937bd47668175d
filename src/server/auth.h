// server/auth.h — who may log in: what the handshake (server/handshake.h: AUTH, HELLO
// AUTH) asks of the users.
//
// The node's users are ACL users (core/acl.h: named users with passwords, kept as SHA-256
// digests and compared in constant time, and their rules); `requirepass` is the default
// user's password. The handshake sees them through Credentials; DefaultUser is the one-user
// form (a password for "default" and nothing else) that the handshake fuzz target checks.
#pragma once

#include <array>
#include <string_view>

namespace hmdb::server {

// The user every connection starts as, as Redis names it (case-sensitive, as Redis compares it).
inline constexpr std::string_view kDefaultUser = "default";

// ACL LOAD and ACL SAVE on a node without --aclfile (Redis' words).
inline constexpr std::string_view kNoAclFileError =
    "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER "
    "command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store "
    "users in the Redis configuration.";

class Credentials {
 public:
  virtual ~Credentials() = default;
  // The default user logs in without a password (it is on and nopass): every connection is
  // authenticated at once, and AUTH <password> is an error (there is none to check).
  virtual bool default_nopass() const = 0;
  // AUTH's and HELLO AUTH's check: the user exists, is on, and the password is its own (any
  // password for a nopass user).
  virtual bool check(std::string_view user, std::string_view password) const = 0;
};

class DefaultUser final : public Credentials {
 public:
  DefaultUser() = default;  // no password: every client is authenticated on connect
  // An empty password means none, as Redis' `requirepass ""`.
  explicit DefaultUser(std::string_view password);

  bool default_nopass() const override { return !has_password_; }
  bool check(std::string_view user, std::string_view password) const override;

 private:
  bool has_password_ = false;
  std::array<unsigned char, 32> digest_{};
};

}  // namespace hmdb::server
