// server/auth.cc — the default user's password check (see auth.h).
#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace hmdb::server {

namespace {
std::array<unsigned char, 32> sha256(std::string_view text) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), d.data());
  return d;
}
}  // namespace

DefaultUser::DefaultUser(std::string_view password) : has_password_(!password.empty()) {
  if (has_password_) digest_ = sha256(password);
}

bool DefaultUser::check(std::string_view user, std::string_view password) const {
  if (user != kDefaultUser) return false;
  if (!has_password_) return true;
  // Hashing first makes the comparison's length fixed; CRYPTO_memcmp's time does not
  // depend on where the digests differ.
  const std::array<unsigned char, 32> d = sha256(password);
  return CRYPTO_memcmp(d.data(), digest_.data(), d.size()) == 0;
}

}  // namespace hmdb::server
