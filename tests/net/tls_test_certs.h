// tests/net/tls_test_certs.h — throwaway certificates for the TLS unit tests and
// fuzz/tls_handshake_fuzz.cc (made once with the openssl commands of docs/security.md,
// 100-year validity, used nowhere else: the keys are public, which is the point): a CA, a
// node certificate it signed, an expired one it signed, and a certificate of another CA.
// write_test_tls_files() puts them in files, as TlsContext::create reads files.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "net/tls.h"

namespace hmdb::net::testing {

inline constexpr char kCaPem[] = R"(-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIUdKjVDUaJZOvcEWnAG7vy9lPIQakwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMaG1kYi1mdXp6LWNhMCAXDTI2MTIwNTIzMjk0MVoYDzIxMjYx
MTExMjMyOTQxWjAXMRUwEwYDVQQDDAxobWRiLWZ1enotY2EwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAQEONx20gg8iFNBhLCJdluvD5MI4P17rjFd6vMyuRl0WGiz
t3RuP9NglO6ihpnOUArri41r+MTyZ8aG51lMCkdjo1MwUTAdBgNVHQ4EFgQUW+9b
xdjZ/R8RU4J94TDshjs103MwHwYDVR0jBBgwFoAUW+9bxdjZ/R8RU4J94TDshjs1
03MwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBZJfy2yE/71LwV
GxkOsCGJCLP66ALTJRAITOyG3qqM+gIhANGob5RJUDUCdZzr+zi9yHPbnG+Ga+Y5
5CLGXoOtLw4A
-----END CERTIFICATE-----
)";
inline constexpr char kNodeCertPem[] = R"(-----BEGIN CERTIFICATE-----
MIIBLDCB0wIUZBf6LSbeZ/zu50Ve0lswTN+VPtMwCgYIKoZIzj0EAwIwFzEVMBMG
A1UEAwwMaG1kYi1mdXp6LWNhMCAXDTI2MTIwNTIzMjk0MVoYDzIxMjYxMTExMjMy
OTQxWjAZMRcwFQYDVQQDDA5obWRiLWZ1enotbm9kZTBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABFrMulWlnFHAPjPrSd6lENDLtMqBQsTq2vYaskxWw89uewL84hgi
8C77/Pimvprm6AQEhqWp83l7jXJ5wh8DZygwCgYIKoZIzj0EAwIDSAAwRQIhAIPn
4sq2RO9ydtco+Jz4SU18WmEIz0HuuBm52oyzlWPvAiAvgbkLdiI+bLCrQDXDz8wd
AO8A6y3u1HnAvq8GFXeEDg==
-----END CERTIFICATE-----
)";
inline constexpr char kNodeKeyPem[] = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgERZEwn8dT0mr8NYU
hSh58jiz49SIlK/19occq5B4k1ahRANCAARazLpVpZxRwD4z60nepRDQy7TKgULE
6tr2GrJMVsPPbnsC/OIYIvAu+/z4pr6a5ugEBIalqfN5e41yecIfA2co
-----END PRIVATE KEY-----
)";
// Signed by kCaPem, but its validity ended the day before it began.
inline constexpr char kExpiredCertPem[] = R"(-----BEGIN CERTIFICATE-----
MIIBLTCB1AIUZBf6LSbeZ/zu50Ve0lswTN+VPtQwCgYIKoZIzj0EAwIwFzEVMBMG
A1UEAwwMaG1kYi1mdXp6LWNhMB4XDTI2MTIwNTIzNDExOVoXDTI2MTIwNDIzNDEx
OVowHDEaMBgGA1UEAwwRaG1kYi10ZXN0LWV4cGlyZWQwWTATBgcqhkjOPQIBBggq
hkjOPQMBBwNCAATkOqt2XQtOwvjh69Ir/XYmL4q6eKdOIJH2NZ7n98OfyH6BV3Kx
sids1yndzcM1vbhCYQp9bjkZhZHM7ig8MHW8MAoGCCqGSM49BAMCA0gAMEUCIDE0
ob2K2flewnXs+DKPY+X1LHovIa6PEaVdzzUD+slSAiEAhUFTTC/mvf3T/xLdU4bB
gnEpUCEPkLpuHXUz1wdrIwI=
-----END CERTIFICATE-----
)";
inline constexpr char kExpiredKeyPem[] = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgox/V9lYlz31+eN3y
FVCCXniuxWedb2m5zL82lcX2ZE+hRANCAATkOqt2XQtOwvjh69Ir/XYmL4q6eKdO
IJH2NZ7n98OfyH6BV3Kxsids1yndzcM1vbhCYQp9bjkZhZHM7ig8MHW8
-----END PRIVATE KEY-----
)";
// Signed by another CA.
inline constexpr char kStrangerCertPem[] = R"(-----BEGIN CERTIFICATE-----
MIIBNjCB3QIUFR6Co038iuDINc8sYBAJQl08QjUwCgYIKoZIzj0EAwIwHTEbMBkG
A1UEAwwSaG1kYi10ZXN0LW90aGVyLWNhMCAXDTI2MTIwNTIzNDExOVoYDzIxMjYx
MTExMjM0MTE5WjAdMRswGQYDVQQDDBJobWRiLXRlc3Qtc3RyYW5nZXIwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAQRDqW34kIQgAcfHl5ep7GiudRMzEk4CoswqqE/
GAdTG8u3PWVFG2iIYwlSG4UXzSajHNzKaNUqaTmC5Voy0z/gMAoGCCqGSM49BAMC
A0gAMEUCIQCPyy3ThYokbHQC2N8gYIhQdW71ML554U98S7m137G4EwIgObEmw9gM
jEgGxGQxa/yNLWtvQaccIHiBcPg8ADSWpE0=
-----END CERTIFICATE-----
)";
inline constexpr char kStrangerKeyPem[] = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg79w5QqfZOR74S4Zw
TJujMXXaVHdMv61EGXb43FneDVShRANCAAQRDqW34kIQgAcfHl5ep7GiudRMzEk4
CoswqqE/GAdTG8u3PWVFG2iIYwlSG4UXzSajHNzKaNUqaTmC5Voy0z/g
-----END PRIVATE KEY-----
)";

// The files of one identity (its certificate and key, and kCaPem as the CA) in a fresh
// temporary directory.
inline TlsFiles write_test_tls_files(const char* cert_pem, const char* key_pem) {
  char tmpl[] = "/tmp/hmdb-tls-test-XXXXXX";
  const std::filesystem::path dir(::mkdtemp(tmpl));
  auto put = [&](const char* name, const char* text) {
    std::ofstream(dir / name, std::ios::binary) << text;
    return (dir / name).string();
  };
  return TlsFiles{put("cert.pem", cert_pem), put("key.pem", key_pem), put("ca.pem", kCaPem)};
}

}  // namespace hmdb::net::testing
