// server/cpu_affinity.h — `hmdb serve --cpus LIST`: the CPUs the server's threads may run on
// (Redis' server_cpulist). On a small machine shared with its clients, one CPU for the server
// leaves the other to them (docs/operations.md, "CPUs").
//
// LIST is CPU numbers and ranges separated by commas, as Linux writes them
// (/proc/<pid>/status Cpus_allowed_list, taskset -c): `1`, `0-3,6`. The rules, exactly:
//   * an item is a number (`6`) or a range (`0-3`, both ends included; `3-1` is refused);
//   * numbers are decimal digits only (no sign, no blank), below kCpuSetSize;
//   * no blanks anywhere (the list is one word on a command line and in a config file);
//   * no empty item: a leading, trailing or doubled comma is refused, as is an empty list;
//   * an item may repeat or overlap another (`0,0`, `0-3,2`): the list is their union.
//
// `hmdb serve` applies it (restrict_to_cpus) on its only thread, after parsing its flags and
// before it starts any thread or child: every thread (the disk thread, the kv app's prefault
// thread, the resolver, the snapshot writer's children and their threads) inherits it. The
// process runs on the listed CPUs it is allowed to run on (sched_getaffinity at start: a
// taskset, a cgroup's cpuset); a list that names none of them stops it at startup.
#pragma once

#include <bitset>
#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hmdb::server {

// The CPU numbers a list may name: 0 .. kCpuSetSize - 1, glibc's CPU_SETSIZE (1024), what a
// cpu_set_t holds (a static_assert in cpu_affinity.cc keeps the two equal).
inline constexpr size_t kCpuSetSize = 1024;

using CpuSet = std::bitset<kCpuSetSize>;

// Parses LIST by the rules above into *out. Pure. On error, *out is unspecified and the
// message (one line) says what is wrong and where: "'3-1' is a reversed range (write 1-3)".
Status parse_cpu_list(std::string_view text, CpuSet* out);

// The set in LIST's shortest form: ascending, runs of two or more as ranges ("0-3,6"); ""
// for an empty set. Pure; parse_cpu_list(format_cpu_list(s)) == s for every non-empty s.
std::string format_cpu_list(const CpuSet& set);

// The CPUs to run on: wanted ∩ allowed (the process's affinity). Pure. An empty intersection
// is an error naming the allowed CPUs. *not_allowed: the wanted CPUs left out (for a note).
Status choose_cpus(const CpuSet& wanted, const CpuSet& allowed, CpuSet* chosen, CpuSet* not_allowed);

// The calling thread's CPU affinity (sched_getaffinity). Linux only.
Status current_cpus(CpuSet* out);

// Restricts the calling thread, and so every thread and process it creates afterwards, to
// choose_cpus(wanted, current_cpus()) (sched_setaffinity). Call it while the process has one
// thread: threads that exist already keep their affinity. *chosen and *not_allowed as above.
Status restrict_to_cpus(const CpuSet& wanted, CpuSet* chosen, CpuSet* not_allowed);

}  // namespace hmdb::server
