// apps/kv/prefault.cc — the thread that faults in fresh blocks off the event loop (prefault.h
// says why and what).
#include "kv/prefault.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "kv/populated_allocator.h"

namespace hmdb::kv::prefault {

namespace {

struct Range {
  char* p;
  size_t bytes;
  size_t done;  // from p on: populated, or handed to madvise (ranges_); unmapped (released_)
};

class Prefaulter {
 public:
  void* take_block() {
    if (!in_owner_process()) return nullptr;
    void* p = nullptr;
    bool dirty = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      start_locked();
      if (!enabled_) return nullptr;
      block_failed_ = false;  // memory may be free again: let the thread try
      if (!pantry_.empty()) {
        p = pantry_.back();
        pantry_.pop_back();
        stats_.blocks_taken++;
      } else if (!returned_.empty()) {  // the thread has not got to it: zeroed here, still no populate
        p = returned_.back();
        returned_.pop_back();
        dirty = true;
        stats_.blocks_taken++;
        stats_.returned_reused_by_caller++;
      } else {
        stats_.blocks_missed++;
      }
    }
    work_cv_.notify_one();
    if (dirty) std::memset(p, 0, kBlockBytes);
    return p;
  }

  void populate_ahead(void* p, size_t bytes) {
    if (!in_owner_process() || bytes == 0) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      start_locked();
      if (!enabled_) return;
      ranges_.push_back(Range{static_cast<char*>(p), bytes, 0});
      stats_.ranges++;
    }
    work_cv_.notify_one();
  }

  void forget(void* p, size_t bytes) {
    if (!in_owner_process()) return;
    char* const lo = static_cast<char*>(p);
    char* const hi = lo + bytes;
    std::unique_lock<std::mutex> lock(mu_);
    for (auto it = ranges_.begin(); it != ranges_.end();) {
      if (it->p < hi && lo < it->p + it->bytes) it = ranges_.erase(it);
      else ++it;
    }
    auto inside = [&] { return busy_p_ && busy_p_ < hi && lo < busy_p_ + busy_bytes_; };
    if (inside()) {
      stats_.forget_waits++;
      idle_cv_.wait(lock, [&] { return !inside(); });
    }
  }

  void give_back(void* p) {
    bool queued = false;
    if (in_owner_process()) {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.returned++;
      if (enabled_ && started_ && returned_.size() < kReturnedBlocksMax) {
        returned_.push_back(p);
        queued = true;
      } else {
        stats_.returned_unmapped_by_caller++;
      }
    }
    if (!queued) {
      ::munmap(p, kBlockBytes);
      return;
    }
    work_cv_.notify_one();
  }

  bool release(void* p, size_t bytes) noexcept {
    bytes = detail::page_round(bytes);
    if (bytes == 0) return true;
    if (!in_owner_process()) return false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      bool queued = false;
      if (enabled_ && stats_.released_bytes_waiting + bytes <= kReleasedBytesMax) {
        try {
          start_locked();  // a table loaded with a populated array may not have started it
          released_.push_back(Range{static_cast<char*>(p), bytes, 0});
          queued = true;
        } catch (...) {  // no memory for the queue, or no thread: the caller unmaps it
        }
      }
      if (!queued) {
        stats_.released_refused++;
        stats_.released_refused_bytes += bytes;
        return false;
      }
      stats_.released++;
      stats_.released_bytes += bytes;
      stats_.released_bytes_waiting += bytes;
    }
    work_cv_.notify_one();
    return true;
  }

  void set_enabled(bool on) {
    std::vector<void*> drop;
    std::deque<Range> arrays;
    {
      std::lock_guard<std::mutex> lock(mu_);
      enabled_ = on;
      if (!on) {
        drop.swap(pantry_);
        drop.insert(drop.end(), returned_.begin(), returned_.end());
        returned_.clear();
        ranges_.clear();
        arrays.swap(released_);
        for (const Range& r : arrays) stats_.released_bytes_waiting -= r.bytes - r.done;
      }
    }
    for (void* p : drop) ::munmap(p, kBlockBytes);
    for (const Range& r : arrays) ::munmap(r.p + r.done, r.bytes - r.done);
    work_cv_.notify_one();
    idle_cv_.notify_all();
  }

  void set_held_for_test(bool held) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = held;
    }
    work_cv_.notify_one();
    idle_cv_.notify_all();
  }

  Stats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  Stats wait_idle() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_cv_.wait(lock, [&] {
      if (!enabled_ || !started_) return true;
      return (pantry_.size() >= kPantryBlocks || block_failed_) && ranges_.empty() && returned_.empty() &&
             released_.empty() && !busy_p_ && !busy_block_;
    });
    return stats_;
  }

 private:
  // A forked child (the snapshot writer) has no thread and may have copied the mutex locked.
  bool in_owner_process() const {
    const pid_t owner = owner_.load(std::memory_order_acquire);
    return owner == 0 || owner == ::getpid();
  }

  void start_locked() {
    if (started_) return;
    // The thread waits for mu_, held here, before it looks at anything. Started first, so
    // that a failure to start (std::system_error) leaves it not started.
    std::thread([this] { run(); }).detach();  // lives as long as the process (never destroyed)
    started_ = true;
    owner_.store(::getpid(), std::memory_order_release);
  }

  // A populated block; nullptr if memory is short. Not kept out of a snapshot's child
  // (MADV_DONTFORK until handed out, tried first): changing a mapping's flags takes the
  // process's mmap lock for writing, and so the loop's MADV_DOFORK waited for this thread's
  // populate, which holds it for reading for a whole 2 MiB page (~5 ms, more when this thread
  // is preempted meanwhile): 187 waits and turns of up to 146 ms while growing to 10 M keys.
  // The price: a ready block shared with a child is copied page by page as the loop first
  // writes it, kPantryBlocks slabs per snapshot at most.
  static void* make_block() {
    void* p;
    try {
      p = detail::map_aligned_block(kBlockBytes);  // aligned: one huge page, and value_alloc.h needs it
    } catch (const std::bad_alloc&) {
      return nullptr;
    }
    if (::madvise(p, kBlockBytes, MADV_POPULATE_WRITE) != 0 && errno == ENOMEM) {
      ::munmap(p, kBlockBytes);
      return nullptr;
    }
    return p;
  }

  void run() {
    ::pthread_setname_np(::pthread_self(), "hmdb-prefault");
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_cv_.wait(lock, [&] {
        return enabled_ && !held_ &&
               ((pantry_.size() < kPantryBlocks && !block_failed_) || !returned_.empty() || !ranges_.empty() ||
                !released_.empty());
      });
      // The pantry first: a slab is needed every few tens of ms of growth, a bucket array's
      // next page only after tens of thousands of inserts. A block handed back fills it for
      // the price of zeroing resident memory (~0.1-0.3 ms for 2 MiB), where a new one must be
      // mapped and populated (~5 ms, the host backing it again: prefault.h).
      if (pantry_.size() < kPantryBlocks + kPantrySpareBlocks && !returned_.empty()) {
        void* p = returned_.front();
        returned_.pop_front();
        busy_block_ = true;
        lock.unlock();
        std::memset(p, 0, kBlockBytes);  // take_block's blocks are zeroed, as fresh ones are
        lock.lock();
        busy_block_ = false;
        if (enabled_) {
          pantry_.push_back(p);
          stats_.returned_reused++;
        } else {
          ::munmap(p, kBlockBytes);  // set_enabled(false) came meanwhile (tests only)
        }
        idle_cv_.notify_all();
        continue;
      }
      if (pantry_.size() < kPantryBlocks && !block_failed_) {
        busy_block_ = true;
        lock.unlock();
        void* p = make_block();
        lock.lock();
        busy_block_ = false;
        if (!p) {
          block_failed_ = true;
        } else if (enabled_) {
          pantry_.push_back(p);
          stats_.blocks_made++;
        } else {
          ::munmap(p, kBlockBytes);
        }
        idle_cv_.notify_all();
        continue;
      }
      // Then the memory handed back: the pantry is full, spares included.
      if (!returned_.empty()) {
        void* p = returned_.front();
        returned_.pop_front();
        busy_block_ = true;
        lock.unlock();
        ::munmap(p, kBlockBytes);
        lock.lock();
        busy_block_ = false;
        stats_.returned_unmapped++;
        idle_cv_.notify_all();
        continue;
      }
      // Then a resize's next chunk to populate: the loop's steps will write it soon, and
      // there are at most kPrefaultAheadBytes of them per table.
      if (ranges_.empty()) {
        unmap_released_chunk(lock);
        continue;
      }
      Range& r = ranges_.front();
      busy_p_ = r.p + r.done;
      busy_bytes_ = std::min(kChunkBytes, r.bytes - r.done);
      r.done += busy_bytes_;
      if (r.done == r.bytes) ranges_.pop_front();
      lock.unlock();
      // The caller owns the range and waits in forget() for this call before unmapping it.
      // Pages the loop has written already are left as they are (a populate only faults in).
      ::madvise(busy_p_, busy_bytes_, MADV_POPULATE_WRITE);
      lock.lock();
      stats_.range_bytes += busy_bytes_;
      busy_p_ = nullptr;
      busy_bytes_ = 0;
      idle_cv_.notify_all();
    }
  }

  // Last, the arrays handed over (release): one chunk of the oldest, up to the next
  // kChunkBytes-aligned address, so that a huge page is unmapped whole and each call holds
  // the mmap lock for one chunk's unmap. Called with the lock held and released_ not empty.
  void unmap_released_chunk(std::unique_lock<std::mutex>& lock) {
    Range& r = released_.front();
    char* const p = r.p + r.done;
    const uintptr_t at = reinterpret_cast<uintptr_t>(p);
    const uintptr_t cut = (at + kChunkBytes) & ~uintptr_t{kChunkBytes - 1};
    const size_t n = std::min(r.bytes - r.done, static_cast<size_t>(cut - at));
    r.done += n;
    if (r.done == r.bytes) released_.pop_front();
    busy_block_ = true;
    lock.unlock();
    ::munmap(p, n);
    lock.lock();
    busy_block_ = false;
    stats_.released_bytes_unmapped += n;
    stats_.released_bytes_waiting -= n;
    stats_.released_munmaps++;
    stats_.released_largest_munmap = std::max<uint64_t>(stats_.released_largest_munmap, n);
    idle_cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable work_cv_, idle_cv_;
  std::atomic<pid_t> owner_{0};
  bool started_ = false;
  bool enabled_ = true;
  bool block_failed_ = false;  // the last block could not be made; retried after a take
  bool busy_block_ = false;    // the thread is making a pantry block, or reusing or unmapping one handed back
  bool held_ = false;          // set_held_for_test
  std::vector<void*> pantry_;
  std::deque<void*> returned_;  // blocks handed back (give_back), oldest first; at most kReturnedBlocksMax (kReturnedBytesMax)
  std::deque<Range> ranges_;
  std::deque<Range> released_;  // arrays handed over (release), oldest first; done: bytes unmapped from p on
  char* busy_p_ = nullptr;  // the chunk the thread is populating now
  size_t busy_bytes_ = 0;
  Stats stats_;
};

// Never destroyed: the thread and tables freed by other static destructors may still use it.
Prefaulter& instance() {
  static Prefaulter* p = new Prefaulter;
  return *p;
}

}  // namespace

void* take_block() { return instance().take_block(); }
void populate_ahead(void* p, size_t bytes) { instance().populate_ahead(p, bytes); }
void forget(void* p, size_t bytes) { instance().forget(p, bytes); }
void give_back(void* p) { instance().give_back(p); }
bool release(void* p, size_t bytes) noexcept { return instance().release(p, bytes); }
void set_enabled(bool on) { instance().set_enabled(on); }
void set_held_for_test(bool held) { instance().set_held_for_test(held); }
Stats stats() { return instance().stats(); }
Stats wait_idle() { return instance().wait_idle(); }

}  // namespace hmdb::kv::prefault
