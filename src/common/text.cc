// common/text.cc — host:port parsing and formatting; see text.h for the rules.
#include "common/text.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace hmdb {

namespace {

bool is_ipv4(const std::string& host) {
  in_addr a{};
  return ::inet_pton(AF_INET, host.c_str(), &a) == 1;
}

bool is_ipv6(const std::string& host) {
  in6_addr a{};
  return ::inet_pton(AF_INET6, host.c_str(), &a) == 1;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.';
}

// An IPv4 address or a host name (no brackets, no colon). Empty: fine; else the problem.
std::string check_ipv4_or_name(const std::string& host) {
  if (host.empty()) return "the host is empty";
  bool digits_and_dots = true;
  for (char c : host) {
    if (!is_name_char(c)) return "'" + host + "' is not an IPv4 address, an [IPv6] address or a host name";
    if (c != '.' && (c < '0' || c > '9')) digits_and_dots = false;
  }
  if (digits_and_dots) return is_ipv4(host) ? "" : "'" + host + "' is not an IPv4 address";
  if (host.size() > kMaxHostNameBytes)
    return "the host name is longer than " + std::to_string(kMaxHostNameBytes) + " bytes";
  if (host[0] == '-' || host[0] == '.' || host.find("..") != std::string::npos)
    return "'" + host + "' is not a host name (a label is empty or starts with '-')";
  return "";
}

}  // namespace

std::string format_host_port(std::string_view host, uint16_t port) {
  const bool bracket = host.find(':') != std::string_view::npos;
  std::string out;
  out.reserve(host.size() + 8);
  if (bracket) out += '[';
  out += host;
  if (bracket) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

std::string HostPort::to_string() const { return format_host_port(host, port); }

bool parse_host_port(std::string_view text, HostPort* out, std::string* error) {
  const std::string quoted = "'" + std::string(text) + "'";
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      *error = quoted + " is not [IPv6]:PORT";
      return false;
    }
    host = std::string(text.substr(1, close - 1));
    if (!is_ipv6(host)) {
      *error = quoted + ": '" + host + "' is not an IPv6 address";
      return false;
    }
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      *error = quoted + " is not HOST:PORT";
      return false;
    }
    if (text.substr(0, colon).find(':') != std::string_view::npos) {
      *error = quoted + ": an IPv6 address needs brackets, as in [::1]:7379";
      return false;
    }
    host = std::string(text.substr(0, colon));
    if (const std::string problem = check_ipv4_or_name(host); !problem.empty()) {
      *error = quoted + ": " + problem;
      return false;
    }
    port_text = text.substr(colon + 1);
  }
  uint64_t port = 0;
  if (!parse_uint64(port_text, &port) || port == 0 || port > 65535) {
    *error = quoted + ": the port must be a number in 1..65535";
    return false;
  }
  out->host = std::move(host);
  out->port = static_cast<uint16_t>(port);
  return true;
}

bool parse_host(std::string_view text, std::string* host, std::string* error) {
  std::string h(text);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.find(':') != std::string::npos) {
    if (!is_ipv6(h)) {
      *error = "'" + std::string(text) + "' is not an IPv6 address";
      return false;
    }
  } else if (const std::string problem = check_ipv4_or_name(h); !problem.empty()) {
    *error = problem;
    return false;
  }
  *host = std::move(h);
  return true;
}

}  // namespace hmdb
