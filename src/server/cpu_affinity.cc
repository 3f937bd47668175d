// server/cpu_affinity.cc — `--cpus LIST`: the list's parser and printer (pure), and its
// application with sched_setaffinity (cpu_affinity.h says the rules and when it is applied).
#include "server/cpu_affinity.h"

#include <sched.h>

#include <cerrno>
#include <cstring>

namespace hmdb::server {

static_assert(kCpuSetSize == CPU_SETSIZE, "a CpuSet holds what a cpu_set_t holds");

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// One number of an item: decimal digits only, below kCpuSetSize.
Status parse_cpu_number(std::string_view item, std::string_view digits, size_t* out) {
  if (digits.empty()) return Status::invalid_argument("'" + std::string(item) + "' is not a CPU number or a range N-M");
  size_t v = 0;
  for (char c : digits) {
    if (!is_digit(c))
      return Status::invalid_argument("'" + std::string(item) + "' is not a CPU number or a range N-M");
    // Saturates instead of overflowing: any value this large is refused below anyway.
    v = v >= kCpuSetSize ? kCpuSetSize : v * 10 + static_cast<size_t>(c - '0');
  }
  if (v >= kCpuSetSize)
    return Status::invalid_argument("CPU " + std::string(digits) + " is beyond the largest CPU number a list may name (" +
                                    std::to_string(kCpuSetSize - 1) + ")");
  *out = v;
  return Status::ok();
}

}  // namespace

Status parse_cpu_list(std::string_view text, CpuSet* out) {
  out->reset();
  if (text.empty()) return Status::invalid_argument("the list is empty (write CPU numbers and ranges: 0-3,6)");
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
      return Status::invalid_argument("the list has a blank in it (write 0-3,6: no blanks)");
  }
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty())
      return Status::invalid_argument("'" + std::string(text) +
                                      "' has an empty item (a comma at the start, at the end or doubled)");
    const size_t dash = item.find('-');
    size_t lo = 0, hi = 0;
    if (dash == std::string_view::npos) {
      if (Status s = parse_cpu_number(item, item, &lo); !s) return s;
      hi = lo;
    } else {
      if (Status s = parse_cpu_number(item, item.substr(0, dash), &lo); !s) return s;
      if (Status s = parse_cpu_number(item, item.substr(dash + 1), &hi); !s) return s;
      if (lo > hi)
        return Status::invalid_argument("'" + std::string(item) + "' is a reversed range (write " +
                                        std::to_string(hi) + "-" + std::to_string(lo) + ")");
    }
    for (size_t cpu = lo; cpu <= hi; cpu++) out->set(cpu);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return Status::ok();
}

std::string format_cpu_list(const CpuSet& set) {
  std::string out;
  size_t cpu = 0;
  while (cpu < kCpuSetSize) {
    if (!set.test(cpu)) {
      cpu++;
      continue;
    }
    size_t last = cpu;
    while (last + 1 < kCpuSetSize && set.test(last + 1)) last++;
    if (!out.empty()) out += ',';
    out += std::to_string(cpu);
    if (last > cpu) out += "-" + std::to_string(last);
    cpu = last + 1;
  }
  return out;
}

Status choose_cpus(const CpuSet& wanted, const CpuSet& allowed, CpuSet* chosen, CpuSet* not_allowed) {
  *chosen = wanted & allowed;
  *not_allowed = wanted & ~allowed;
  if (chosen->none())
    return Status::invalid_argument("it names no CPU this process may run on; it may run on " +
                                    format_cpu_list(allowed) + " (sched_getaffinity: its taskset or cgroup cpuset)");
  return Status::ok();
}

Status current_cpus(CpuSet* out) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0)
    return Status::io_error(std::string("sched_getaffinity: ") + std::strerror(errno));
  out->reset();
  for (size_t cpu = 0; cpu < kCpuSetSize; cpu++) {
    if (CPU_ISSET(cpu, &set)) out->set(cpu);
  }
  return Status::ok();
}

Status restrict_to_cpus(const CpuSet& wanted, CpuSet* chosen, CpuSet* not_allowed) {
  CpuSet allowed;
  if (Status s = current_cpus(&allowed); !s) return s;
  if (Status s = choose_cpus(wanted, allowed, chosen, not_allowed); !s) return s;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (size_t cpu = 0; cpu < kCpuSetSize; cpu++) {
    if (chosen->test(cpu)) CPU_SET(cpu, &set);
  }
  if (::sched_setaffinity(0, sizeof set, &set) != 0)
    return Status::io_error(std::string("sched_setaffinity(") + format_cpu_list(*chosen) + "): " + std::strerror(errno));
  return Status::ok();
}

}  // namespace hmdb::server
