// server/huge_pages.cc — the heap in transparent huge pages (huge_pages.h says why).
#include "server/huge_pages.h"

#include <gnu/libc-version.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

namespace hmdb::server {

namespace {

constexpr std::string_view kTunable = "glibc.malloc.hugetlb=";
// The kernel's switch for transparent huge pages: "[never]" means none at all.
constexpr const char* kThpEnabledPath = "/sys/kernel/mm/transparent_hugepage/enabled";
// glibc.malloc.hugetlb exists from glibc 2.35 on (older ones ignore it).
constexpr int kGlibcMajor = 2, kGlibcMinor = 35;

bool glibc_has_tunable() {
  int major = 0, minor = 0;
  if (std::sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor) != 2) return false;
  return major > kGlibcMajor || (major == kGlibcMajor && minor >= kGlibcMinor);
}

// The kernel's setting: "always", "madvise" (glibc's madvise is what asks), or "never"/unknown.
std::string thp_mode() {
  std::ifstream in(kThpEnabledPath);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string s = ss.str();
  const size_t open = s.find('['), close = s.find(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return "";
  return s.substr(open + 1, close - open - 1);
}

}  // namespace

std::string huge_pages_for_heap(bool want, char** argv) {
  const char* env = std::getenv("GLIBC_TUNABLES");
  const std::string tunables = env ? env : "";
  const size_t at = tunables.find(kTunable);
  if (at != std::string::npos) {
    // Set (by us before the exec, or by the operator): its value decides.
    const char v = at + kTunable.size() < tunables.size() ? tunables[at + kTunable.size()] : '0';
    if (v == '0') return "no (GLIBC_TUNABLES sets glibc.malloc.hugetlb=0)";
    if (!glibc_has_tunable()) return std::string("no (glibc ") + gnu_get_libc_version() + " has no glibc.malloc.hugetlb)";
    return "yes";
  }
  if (!want) return "no";
  if (!glibc_has_tunable()) return std::string("no (glibc ") + gnu_get_libc_version() + " has no glibc.malloc.hugetlb)";
  const std::string mode = thp_mode();
  if (mode != "always" && mode != "madvise")
    return "no (transparent huge pages are " + (mode.empty() ? std::string("not available") : mode) + " in this kernel)";
  const std::string with = tunables.empty() ? std::string(kTunable) + "1" : tunables + ":" + std::string(kTunable) + "1";
  if (::setenv("GLIBC_TUNABLES", with.c_str(), 1) != 0) return std::string("no (setenv: ") + std::strerror(errno) + ")";
  ::execv("/proc/self/exe", argv);
  const int err = errno;  // still here: run on without
  if (env) ::setenv("GLIBC_TUNABLES", env, 1);
  else ::unsetenv("GLIBC_TUNABLES");
  return std::string("no (re-executing with glibc.malloc.hugetlb=1 failed: ") + std::strerror(err) + ")";
}

}  // namespace hmdb::server
