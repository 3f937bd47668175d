// server/huge_pages.h — transparent huge pages for the server's heap, so that a snapshot's
// fork() copies page tables of 2 MiB pages instead of 4 KiB ones.
//
// Why: a snapshot forks (server/snapshot.cc), and fork() copies the parent's page tables
// while the event loop waits. With 4 KiB pages that is ~150 ms for a 2.4 GB heap on the
// reference VM, and 100-430 ms was seen to depose a leader (200 ms election timeout). With
// the heap in 2 MiB pages it is ~1 ms (bench/README.md, "Fork stall and huge pages"). The
// price: while a snapshot child runs, the first write to a page copies 2 MiB instead of
// 4 KiB, so the copy-on-write memory of a write-heavy snapshot grows faster (docs/operations.md).
//
// How: glibc's malloc asks for huge pages (madvise(MADV_HUGEPAGE) on its heaps) when the
// tunable glibc.malloc.hugetlb=1 is set, which glibc reads at process start only. So
// `hmdb serve --huge-pages yes` sets it in GLIBC_TUNABLES and executes itself again, once,
// before it does anything else (no file, socket or thread is open yet); the kv app's big
// blocks, which it maps itself, follow the same tunable (apps/kv/populated_allocator.h).
// Off by default: with few writes during a snapshot, 4 KiB pages copy far less memory.
#pragma once

#include <string>

namespace hmdb::server {

// Before serving: if `want` and the tunable is not yet set, and this kernel and glibc can
// use it, sets GLIBC_TUNABLES and re-executes /proc/self/exe with argv (does not return
// then). Otherwise returns what is in effect, for the log and INFO's huge_pages: "yes",
// "no", or "no (<why>)".
std::string huge_pages_for_heap(bool want, char** argv);

}  // namespace hmdb::server
