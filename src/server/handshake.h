// server/handshake.h — what a client sends on connect, checked as Redis 7 checks it with no
// password configured: HELLO's options, AUTH, and client names (CLIENT SETNAME, HELLO
// SETNAME, CLIENT SETINFO's values).
//
// Without a configured password Redis has one user, "default", who needs no password:
// AUTH default <anything> and HELLO ... AUTH default <anything> succeed, any other user
// name is refused with WRONGPASS, and the one-argument AUTH <password> is an error (there
// is no password to check it against). Real authentication is a later issue; these rules
// are what clients configured with a password meet today.
//
// Pure functions of the words: the shell (shell_commands.cc) applies the outcome, and
// fuzz/handshake_fuzz.cc feeds them arbitrary words.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "hmdb/reply.h"
#include "hmdb/state_machine.h"

namespace hmdb::server {

// The only user there is, as Redis names it (case-sensitive, as Redis compares it).
inline constexpr std::string_view kDefaultUser = "default";

// HELLO [protover [AUTH username password] [SETNAME clientname]]: its options are taken in
// order, as Redis does, and the first bad one ends it with `error`. A SETNAME before that
// still takes effect (Redis sets the name as it goes); the protocol switches only if there
// was no error.
struct HelloRequest {
  std::optional<Protocol> protocol;     // HELLO 2 or 3; unset: keep the session's
  std::optional<std::string_view> name;  // the last SETNAME taken ("" clears the name)
  std::string error;                     // the error reply without '-', or "" if none
};
HelloRequest parse_hello(Args argv);

// AUTH password | AUTH username password: "" for +OK, else the error reply without '-'.
std::string auth_error(Args argv);

// A client name (and CLIENT SETINFO's values) may not contain spaces, newlines or other
// characters outside '!'..'~', so that CLIENT LIST stays one line per client split by
// spaces. The empty name clears the name.
bool valid_client_name(std::string_view name);

}  // namespace hmdb::server
