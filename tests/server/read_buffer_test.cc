// tests/server/read_buffer_test.cc — a session's read buffer (server/session.h): bytes
// committed are read back in order across growth and compaction, and a released buffer of
// kReadChunkBytes goes to the loop thread's pool, where the next reserve() of any session
// takes it instead of allocating (at pipeline 1 a session releases its buffer after every
// request), up to kPooledReadBuffersMax.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "server/options.h"
#include "server/session.h"

namespace hmdb::server {
namespace {

void put(ReadBuffer& b, const std::string& s) {
  char* p = b.reserve(s.size());
  std::memcpy(p, s.data(), s.size());
  b.commit(s.size());
}

std::string take(ReadBuffer& b, size_t n) {
  std::string s(b.data(), n);
  b.consume(n);
  return s;
}

TEST(ReadBufferTest, BytesComeBackInOrderAcrossGrowthAndCompaction) {
  ReadBuffer b;
  std::string expected;
  std::string got;
  for (int i = 0; i < 2000; i++) {
    const std::string chunk = std::to_string(i) + std::string(static_cast<size_t>(i % 97), 'x') + ";";
    put(b, chunk);
    expected += chunk;
    if (i % 3 == 0) got += take(b, b.size() / 2);
  }
  got += take(b, b.size());
  EXPECT_EQ(got, expected);
  EXPECT_TRUE(b.empty());
}

// (Planted bug, seen failing: release() that frees the buffer instead of pooling it —
// pooled_buffers() stays 0 and the next session's buffer is another allocation.)
TEST(ReadBufferTest, AReleasedChunkIsTakenByTheNextSessionsRead) {
  // A thread of its own: the pool is the thread's, and this test counts it from empty.
  std::thread([] {
    ASSERT_EQ(ReadBuffer::pooled_buffers(), 0u);
    ReadBuffer a;
    char* first = a.reserve(kReadChunkBytes);
    put(a, "*1\r\n$4\r\nPING\r\n");
    take(a, a.size());
    a.release();
    EXPECT_EQ(a.capacity(), 0u);
    EXPECT_EQ(ReadBuffer::pooled_buffers(), 1u);
    ReadBuffer b;
    EXPECT_EQ(b.reserve(kReadChunkBytes), first);  // the pooled buffer, not a new one
    EXPECT_EQ(b.capacity(), kReadChunkBytes);
    EXPECT_EQ(ReadBuffer::pooled_buffers(), 0u);
    put(b, "hello");
    EXPECT_EQ(take(b, 5), "hello");
    // A buffer grown past the chunk size is freed, not pooled.
    ReadBuffer big;
    big.reserve(kReadChunkBytes * 4);
    big.release();
    EXPECT_EQ(ReadBuffer::pooled_buffers(), 0u);
    // The pool is bounded: releasing more buffers than it holds frees the rest.
    std::vector<ReadBuffer> many(200);
    for (auto& m : many) m.reserve(kReadChunkBytes);
    for (auto& m : many) m.release();
    const size_t pooled = ReadBuffer::pooled_buffers();
    EXPECT_GT(pooled, 0u);
    EXPECT_LT(pooled, many.size());
  }).join();
}

}  // namespace
}  // namespace hmdb::server
