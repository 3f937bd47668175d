// server/huge_pages.cc — the heap in transparent huge pages (huge_pages.h says why).
#include "server/huge_pages.h"

#include <gnu/libc-version.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "server/logging.h"

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

// MADV_COLLAPSE (Linux 6.1) may be missing from older headers; the value is ABI.
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
constexpr size_t kHugePageBytes = size_t{2} << 20;
// CPU priority of the mending thread (below the event loop's, like the snapshot child's).
constexpr int kMendNice = 10;

}  // namespace

size_t heap_page_bytes() {
  static const size_t bytes = [] {
    const char* env = std::getenv("GLIBC_TUNABLES");
    const std::string_view t = env ? env : "";
    const size_t at = t.find(kTunable);
    if (at != std::string_view::npos && at + kTunable.size() < t.size() && t[at + kTunable.size()] != '0')
      return kHugePageBytes;
    return static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  }();
  return bytes;
}

void HugePageMender::join() {
  if (thread_.joinable()) thread_.join();
}

void HugePageMender::start() {
  stop_.store(true);
  join();
  stop_.store(false);
  thread_ = std::thread([this] { run(); });
}

std::string HugePageMender::failure() const { return failed_.load() ? failure_ : std::string(); }

void HugePageMender::run() {
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), kMendNice);
  std::ifstream maps("/proc/self/maps");
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  std::string line;
  while (std::getline(maps, line)) {
    // start-end perms offset dev inode [path]: private anonymous read-write memory (the
    // heap, malloc's arenas, the app's own blocks), not stacks or special mappings.
    unsigned long begin = 0, end = 0, inode = 1;
    char perms[8] = {0}, path[64] = {0};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %*s %*s %lu %63s", &begin, &end, perms, &inode, path) < 4) continue;
    if (std::string_view(perms) != "rw-p" || inode != 0) continue;
    if (path[0] != '\0' && std::string_view(path) != "[heap]") continue;
    ranges.emplace_back(begin, end);
  }
  std::vector<unsigned char> resident(kHugePageBytes / static_cast<size_t>(::sysconf(_SC_PAGESIZE)));
  for (const auto& [begin, end] : ranges) {
    for (uintptr_t at = (begin + kHugePageBytes - 1) & ~(kHugePageBytes - 1); at + kHugePageBytes <= end;
         at += kHugePageBytes) {
      if (stop_.load()) return;
      void* p = reinterpret_cast<void*>(at);
      if (::mincore(p, kHugePageBytes, resident.data()) != 0) break;  // the mapping changed: skip it
      bool all = true;
      for (unsigned char r : resident) all = all && (r & 1);
      if (!all) continue;
      if (::madvise(p, kHugePageBytes, MADV_COLLAPSE) == 0) {
        ranges_.fetch_add(1);
      } else if (errno == EINVAL) {  // a kernel before 6.1, or a mapping that cannot
        if (!failed_.load()) {
          failure_ = std::string("madvise(MADV_COLLAPSE): ") + std::strerror(errno);
          failed_.store(true);
          log_line("memory: cannot put huge pages back after a snapshot ({}): the next fork may stall longer",
                   failure_);
        }
        passes_.fetch_add(1);
        return;
      }  // EAGAIN/ENOMEM (no huge page free now), or the range changed: the next one
    }
  }
  passes_.fetch_add(1);
}

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
