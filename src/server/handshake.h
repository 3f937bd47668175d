// server/handshake.h — what a client sends on connect, checked as Redis 7 checks it with no
// password configured: HELLO's options, AUTH, and client names (CLIENT SETNAME, HELLO
// SETNAME, CLIENT SETINFO's values).
//
// The users are the node's ACL users (server/auth.h: Credentials). While the default user
// needs no password, AUTH default <anything> and HELLO ... AUTH default <anything> succeed,
// and the one-argument AUTH <password> is an error (there is no password to check it
// against), as in Redis 7. With `requirepass` (the default user's password), AUTH
// <password> checks it. AUTH <user> <password> and HELLO ... AUTH <user> <password> check
// any user's; an unknown user, a disabled one or a wrong password is WRONGPASS.
//
// Pure functions of the words: the shell (shell_commands.cc) applies the outcome, and
// fuzz/handshake_fuzz.cc feeds them arbitrary words.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "hmdb/reply.h"
#include "hmdb/state_machine.h"
#include "server/auth.h"

namespace hmdb::server {

// HELLO [protover [AUTH username password] [SETNAME clientname]]: its options are taken in
// order, as Redis does, and the first bad one ends it with `error`. A SETNAME before that
// still takes effect (Redis sets the name as it goes); the protocol switches only if there
// was no error.
struct HelloRequest {
  std::optional<Protocol> protocol;     // HELLO 2 or 3; unset: keep the session's
  std::optional<std::string_view> name;  // the last SETNAME taken ("" clears the name)
  std::string error;                     // the error reply without '-', or "" if none
  bool authenticated = false;            // AUTH was given and its credentials are right
  std::string_view user;                 // the user AUTH named (logged in as, or refused)
  bool auth_failed = false;              // AUTH was given and refused (WRONGPASS)
};
HelloRequest parse_hello(Args argv, const Credentials& user);

// AUTH password | AUTH username password: "" for +OK, else the error reply without '-'
// (WRONGPASS for credentials that do not match: auth_refused() says so).
std::string auth_error(Args argv, const Credentials& user);
bool auth_refused(std::string_view error);

// The errors a client that has not authenticated meets (Redis 7.2's texts).
inline constexpr std::string_view kNoAuth = "NOAUTH Authentication required.";
inline constexpr std::string_view kHelloNoAuth =
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> "
    "<pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

// A client name (and CLIENT SETINFO's values) may not contain spaces, newlines or other
// characters outside '!'..'~', so that CLIENT LIST stays one line per client split by
// spaces. The empty name clears the name.
bool valid_client_name(std::string_view name);

}  // namespace hmdb::server
