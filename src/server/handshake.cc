// server/handshake.cc — HELLO's options, AUTH and client names (see handshake.h); the error
// texts are Redis 7's (networking.c helloCommand, acl.c authCommand).
#include "server/handshake.h"

#include <algorithm>

#include "hmdb/text.h"

namespace hmdb::server {

namespace {
constexpr std::string_view kWrongPass = "WRONGPASS invalid username-password pair or user is disabled.";
constexpr std::string_view kBadName = "ERR Client names cannot contain spaces, newlines or special characters.";
}  // namespace

bool valid_client_name(std::string_view name) {
  return std::all_of(name.begin(), name.end(), [](char c) { return c >= '!' && c <= '~'; });
}

bool auth_refused(std::string_view error) { return error == kWrongPass; }

HelloRequest parse_hello(Args argv, const Credentials& user) {
  HelloRequest h;
  size_t next = 1;
  if (argv.size() >= 2) {
    int64_t version = 0;
    if (!parse_int64(argv[1], &version)) {
      h.error = "ERR Protocol version is not an integer or out of range";
      return h;
    }
    if (version != 2 && version != 3) {
      h.error = "NOPROTO unsupported protocol version";
      return h;
    }
    h.protocol = version == 3 ? Protocol::kResp3 : Protocol::kResp2;
    next = 2;
  }
  for (size_t i = next; i < argv.size(); i++) {
    const size_t more = argv.size() - 1 - i;
    if (iequals(argv[i], "AUTH") && more >= 2) {
      h.user = argv[i + 1];
      if (!user.check(argv[i + 1], argv[i + 2])) {
        h.error = kWrongPass;
        h.auth_failed = true;
        break;
      }
      h.authenticated = true;
      i += 2;
    } else if (iequals(argv[i], "SETNAME") && more >= 1) {
      if (!valid_client_name(argv[i + 1])) {
        h.error = kBadName;
        break;
      }
      h.name = argv[++i];
    } else {
      h.error = "ERR Syntax error in HELLO option '" + std::string(argv[i]) + "'";
      break;
    }
  }
  if (!h.error.empty()) {
    h.protocol.reset();
    h.authenticated = false;
  }
  return h;
}

std::string auth_error(Args argv, const Credentials& user) {
  if (argv.size() > 3) return "ERR syntax error";
  if (argv.size() == 2 && user.default_nopass())
    return "ERR AUTH <password> called without any password configured for the default user. Are you sure your "
           "configuration is correct?";
  const bool ok = argv.size() == 2 ? user.check(kDefaultUser, argv[1]) : user.check(argv[1], argv[2]);
  return ok ? std::string() : std::string(kWrongPass);
}

}  // namespace hmdb::server
