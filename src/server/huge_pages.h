// server/huge_pages.h — transparent huge pages for the server's heap, so that a snapshot's
// fork() copies page tables of 2 MiB pages instead of 4 KiB ones.
//
// Why: a snapshot forks (server/snapshot.cc), and fork() copies the parent's page tables
// while the event loop waits: 20-100 ms per GiB of state with 4 KiB pages on the reference
// VM (a 0.2-1 s stall at 10 GiB, longer than the 200 ms election timeout: a leader is
// deposed), ~0.5 ms per GiB with the heap in 2 MiB pages (bench/README.md, "Fork stall and
// huge pages"). Forking from another thread does not help: the loop's first write to memory
// whose page tables fork() already copied waits for the whole fork (docs/decisions.md,
// "Huge pages by default"). Writes during a snapshot copy 4 KiB either way (since Linux 5.8
// the first write to a shared huge page splits it).
//
// How: glibc's malloc asks for huge pages (madvise(MADV_HUGEPAGE) on its heaps) when the
// tunable glibc.malloc.hugetlb=1 is set, which glibc reads at process start only. So
// `hmdb serve` (--huge-pages yes, the default) sets it in GLIBC_TUNABLES and executes itself
// again, once, before it does anything else (no file, socket or thread is open yet); the kv
// app's big blocks, which it maps itself, follow the same tunable
// (apps/kv/populated_allocator.h). The price: on a VM that hands free memory back to its host
// (free page reporting), filling memory that was handed back costs 2-3 times more in huge
// pages, so a restart of a big node can take longer (docs/operations.md, "Huge pages");
// `--huge-pages no` keeps 4 KiB pages.
#pragma once

#include <string>

namespace hmdb::server {

// Before serving: if `want` and the tunable is not yet set, and this kernel and glibc can
// use it, sets GLIBC_TUNABLES and re-executes /proc/self/exe with argv (does not return
// then). Otherwise returns what is in effect, for the log and INFO's huge_pages: "yes",
// "no", or "no (<why>)".
std::string huge_pages_for_heap(bool want, char** argv);

}  // namespace hmdb::server
