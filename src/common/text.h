// common/text.h — the engine's text rules: hmdb/text.h (integers, ASCII case; shared with
// apps) and host:port, the one syntax of every address a flag, a member list, a Hello, a
// redirect or a tool argument carries.
//
//   HOST:PORT   HOST is an IPv4 address (10.0.0.1), an IPv6 address in brackets ([::1],
//               [2001:db8::7]) or a host name (localhost, db-1.internal); PORT is 1..65535
//               in decimal.
//
// A bare IPv6 address cannot carry a port ("::1:7379" is ambiguous) and is refused with a
// message that says to bracket it. A host name is letters, digits, '-', '_' and dots
// (labels not empty, a final dot allowed), at most kMaxHostNameBytes, not starting with
// '-'; a host of digits and dots only must be an IPv4 address. Names are checked, not
// resolved: common/address.h resolves them. Every function is pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "hmdb/text.h"

namespace hmdb {

// Longest host name (RFC 1035's 253 text bytes).
inline constexpr size_t kMaxHostNameBytes = 253;

struct HostPort {
  std::string host;  // without brackets
  uint16_t port = 0;
  // "host:port", the host in brackets when it is an IPv6 address: what parse_host_port reads.
  std::string to_string() const;
  bool operator==(const HostPort&) const = default;
};

// Parses HOST:PORT (above). On error returns false and sets *error to a sentence naming the
// text and what is wrong; *out is then unchanged.
bool parse_host_port(std::string_view text, HostPort* out, std::string* error);

// A host alone, as --bind takes it: an IPv4 address, an IPv6 address (brackets optional,
// there is no port to confuse it with) or a host name. *host is without brackets.
bool parse_host(std::string_view text, std::string* host, std::string* error);

// "host:port" with an IPv6 host in brackets.
std::string format_host_port(std::string_view host, uint16_t port);

}  // namespace hmdb
