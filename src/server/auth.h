// server/auth.h — the default user's password (`requirepass`): who may run commands.
//
// The password is kept only as its SHA-256 digest (OpenSSL's libcrypto); a password a
// client sends is hashed and the two digests are compared in constant time, so neither
// the stored value nor the comparison's timing gives the password away. With no password
// set, the default user needs none, as in Redis.
//
// One user today ("default"); named users with ACL rules are a later slice of issue 15 and
// will sit beside this one (a user name -> its digests and rules), with the same check.
#pragma once

#include <array>
#include <string_view>

namespace hmdb::server {

// The only user there is, as Redis names it (case-sensitive, as Redis compares it).
inline constexpr std::string_view kDefaultUser = "default";

class DefaultUser {
 public:
  DefaultUser() = default;  // no password: every client is authenticated on connect
  // An empty password means none, as Redis' `requirepass ""`.
  explicit DefaultUser(std::string_view password);

  bool requires_password() const { return has_password_; }
  // AUTH's and HELLO AUTH's check: the user is "default" and the password is its password
  // (any password when none is set).
  bool check(std::string_view user, std::string_view password) const;

 private:
  bool has_password_ = false;
  std::array<unsigned char, 32> digest_{};
};

}  // namespace hmdb::server
