// tests/storage/codec_test.cc — hmdb/codec.h: Encoder/Decoder round trips, malformed input
// (sticky failure, never out of bounds), and streaming through a Sink.
#include "hmdb/codec.h"

#include <gtest/gtest.h>

#include <array>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace hmdb {
namespace {

TEST(Codec, FixedWidthRoundTripIsLittleEndian) {
  Encoder e;
  e.u8(0xab);
  e.u16(0x1234);
  e.u32(0xdeadbeef);
  e.u64(0x0102030405060708);
  e.i64(-5);
  e.f64(3.5);
  e.boolean(true);
  const std::string& b = e.buffer();
  ASSERT_EQ(b.size(), 1u + 2 + 4 + 8 + 8 + 8 + 1);
  EXPECT_EQ(static_cast<uint8_t>(b[1]), 0x34);  // low byte first
  EXPECT_EQ(static_cast<uint8_t>(b[3]), 0xef);
  Decoder d(b);
  EXPECT_EQ(d.u8(), 0xab);
  EXPECT_EQ(d.u16(), 0x1234);
  EXPECT_EQ(d.u32(), 0xdeadbeefu);
  EXPECT_EQ(d.u64(), 0x0102030405060708u);
  EXPECT_EQ(d.i64(), -5);
  EXPECT_EQ(d.f64(), 3.5);
  EXPECT_TRUE(d.boolean());
  EXPECT_TRUE(d.done());
}

TEST(Codec, VarintEdges) {
  const uint64_t values[] = {0, 1, 127, 128, 255, 16383, 16384, uint64_t{1} << 32, (uint64_t{1} << 63) - 1,
                             uint64_t{1} << 63, std::numeric_limits<uint64_t>::max()};
  for (uint64_t v : values) {
    Encoder e;
    e.varint(v);
    Decoder d(e.buffer());
    EXPECT_EQ(d.varint(), v);
    EXPECT_TRUE(d.done()) << v;
  }
  Encoder one;
  one.varint(127);
  EXPECT_EQ(one.size(), 1u);
  Encoder ten;
  ten.varint(std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(ten.size(), 10u);
}

TEST(Codec, SignedVarintRoundTrip) {
  for (int64_t v : {int64_t{0}, int64_t{-1}, int64_t{1}, int64_t{-64}, int64_t{64},
                    std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}) {
    Encoder e;
    e.svarint(v);
    Decoder d(e.buffer());
    EXPECT_EQ(d.svarint(), v);
    EXPECT_TRUE(d.done());
  }
  Encoder small;
  small.svarint(-1);
  EXPECT_EQ(small.size(), 1u);  // zig-zag keeps small negatives short
}

TEST(Codec, BytesAreBinarySafe) {
  std::string bin("\0a\xff\n\r", 5);
  Encoder e;
  e.bytes(bin);
  e.bytes("");
  Decoder d(e.buffer());
  EXPECT_EQ(d.bytes(), bin);
  EXPECT_EQ(d.bytes(), "");
  EXPECT_TRUE(d.done());
}

TEST(Codec, RandomRoundTrip) {
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 200; round++) {
    std::vector<std::pair<int, uint64_t>> fields;
    std::vector<std::string> strings;
    Encoder e;
    for (int i = 0; i < 50; i++) {
      int kind = static_cast<int>(rng() % 4);
      uint64_t v = rng() >> (rng() % 64);
      fields.emplace_back(kind, v);
      if (kind == 0) e.varint(v);
      if (kind == 1) e.u64(v);
      if (kind == 2) e.svarint(static_cast<int64_t>(v));
      if (kind == 3) {
        strings.emplace_back(v % 100, static_cast<char>(v));
        e.bytes(strings.back());
      }
    }
    Decoder d(e.buffer());
    size_t s = 0;
    for (auto [kind, v] : fields) {
      if (kind == 0) {
        ASSERT_EQ(d.varint(), v);
      } else if (kind == 1) {
        ASSERT_EQ(d.u64(), v);
      } else if (kind == 2) {
        ASSERT_EQ(d.svarint(), static_cast<int64_t>(v));
      } else {
        ASSERT_EQ(d.bytes(), strings[s++]);
      }
    }
    EXPECT_TRUE(d.done());
  }
}

TEST(Codec, TruncatedInputFailsStickyWithoutReadingPastTheEnd) {
  Encoder e;
  e.u64(7);
  e.bytes("hello");
  std::string full = e.take();
  for (size_t n = 0; n < full.size(); n++) {
    Decoder d(std::string_view(full).substr(0, n));
    d.u64();
    std::string_view s = d.bytes();
    EXPECT_FALSE(d.ok()) << n;
    EXPECT_TRUE(s.empty());
    EXPECT_EQ(d.u32(), 0u);  // every read after a failure returns zero
    EXPECT_EQ(d.remaining(), 0u);
  }
}

TEST(Codec, MalformedFieldsFail) {
  {
    std::string over(10, '\xff');  // varint longer than 64 bits
    Decoder d(over);
    d.varint();
    EXPECT_FALSE(d.ok());
  }
  {
    std::string two("\x02", 1);  // boolean must be 0 or 1
    Decoder d(two);
    d.boolean();
    EXPECT_FALSE(d.ok());
  }
  {
    Encoder e;
    e.varint(1'000'000);  // length far beyond what remains
    e.raw("abc");
    Decoder d(e.buffer());
    EXPECT_TRUE(d.bytes().empty());
    EXPECT_FALSE(d.ok());
  }
  {
    Encoder e;
    e.varint(100);  // a count of 100 items of >= 4 bytes cannot fit in 8 bytes
    e.u64(0);
    Decoder d(e.buffer());
    EXPECT_EQ(d.count(4), 0u);
    EXPECT_FALSE(d.ok());
  }
  {
    std::string trailing("\x01\x02", 2);
    Decoder d(trailing);
    d.u8();
    EXPECT_TRUE(d.ok());
    EXPECT_FALSE(d.done());  // trailing bytes are visible to the caller
  }
}

// count<Item...>() derives the fewest bytes per item from the types of the values an item
// holds, never more than an Encoder writes for them: a count of the smallest items an
// Encoder can write is accepted, one more item than the bytes can hold is refused.
TEST(Codec, TypedCountsAcceptWhatAnEncoderWroteAndNoMore) {
  static_assert(codec::encoded_bytes_min<std::string, double> == 9);
  static_assert(codec::encoded_bytes_min<std::pair<std::string, uint64_t>, bool> == 3);
  static_assert(codec::encoded_bytes_min<std::tuple<int64_t, std::string_view>> == 2);
  static_assert(codec::encoded_bytes_min<std::array<char, 16>> == 16);
  static_assert(codec::encoded_bytes_min<std::vector<std::string>, std::optional<int>> == 2);
  enum class Color : uint8_t { kRed };
  static_assert(codec::encoded_bytes_min<Color> == 1);
  struct Unsized { int a, b; };
  static_assert(!codec::EncodedBytesMin<Unsized>::kKnown);

  for (uint64_t items : {0, 1, 5, 1000}) {
    Encoder e;
    e.varint(items);
    for (uint64_t i = 0; i < items; i++) {  // the smallest encoding of (string, double, int)
      e.bytes("");
      e.f64(0);
      e.svarint(0);
    }
    {
      Decoder d(e.buffer());
      EXPECT_EQ((d.count<std::string, double, int64_t>()), items);
      EXPECT_TRUE(d.ok());
    }
    Encoder more;
    more.varint(items + 1);
    more.raw(std::string_view(e.buffer()).substr(e.buffer().size() - items * 10));
    Decoder d(more.buffer());
    EXPECT_EQ((d.count<std::string, double, int64_t>()), 0u) << items + 1 << " items in the bytes of " << items;
    EXPECT_FALSE(d.ok());
  }
}

TEST(Codec, ExpectEndFailsOnTrailingBytes) {
  std::string two("\x01\x02", 2);
  Decoder d(two);
  d.u8();
  EXPECT_FALSE(d.expect_end());
  EXPECT_FALSE(d.ok()) << "a trailing byte fails the decoder";
  Decoder whole(two);
  whole.u16();
  EXPECT_TRUE(whole.expect_end());
  Decoder broken(two);
  broken.u64();
  EXPECT_FALSE(broken.expect_end()) << "an earlier failure stays";
}

class StringSink : public Sink {
 public:
  void write(std::string_view bytes) override {
    out += bytes;
    writes++;
  }
  std::string out;
  int writes = 0;
};

TEST(Codec, SinkStreamsInChunksAndMatchesInMemoryEncoding) {
  StringSink sink;
  Encoder streamed(&sink);
  Encoder plain;
  std::string chunk(1000, 'x');
  for (int i = 0; i < 5000; i++) {  // ~5 MB: several flushes
    streamed.varint(i);
    streamed.bytes(chunk);
    plain.varint(i);
    plain.bytes(chunk);
    EXPECT_LE(streamed.size(), Encoder::kFlushBytes + chunk.size() + 16);  // bounded buffer
  }
  streamed.finish();
  EXPECT_GT(sink.writes, 3);
  EXPECT_EQ(sink.out, plain.buffer());
}

TEST(Codec, EncoderAppendsToTheCallersStringInPlace) {
  std::string out = "head";
  out.reserve(64);
  const char* storage = out.data();
  Encoder e(&out);
  e.u32(0x01020304);
  e.varint(300);
  e.bytes("ab");
  EXPECT_EQ(out.data(), storage);  // no reallocation, no copy: the bytes went into `out`
  EXPECT_EQ(out, std::string("head\x04\x03\x02\x01\xac\x02\x02" "ab", 4 + 4 + 2 + 3));
  EXPECT_EQ(&e.buffer(), &out);
}

TEST(Codec, CopiedAndMovedEncodersKeepTheirOwnBuffer) {
  Encoder a;
  a.u8(1);
  Encoder b = a;  // a copy has its own buffer
  b.u8(2);
  EXPECT_EQ(a.size(), 1u);
  EXPECT_EQ(b.size(), 2u);
  Encoder c = std::move(b);
  c.u8(3);
  EXPECT_EQ(c.buffer(), std::string("\x01\x02\x03", 3));
  std::string target;
  Encoder d(&target);
  Encoder e = std::move(d);  // still appends to the caller's string
  e.u8(4);
  EXPECT_EQ(target, std::string("\x04", 1));
}

TEST(Codec, FixedWidthPrimitivesAtAnOffsetAreLittleEndian) {
  char b[14] = {};
  codec::put_u16(b, 0x0102);
  codec::put_u32(b + 2, 0x03040506);
  codec::put_u64(b + 6, 0x0708090a0b0c0d0e);
  const unsigned char want[14] = {0x02, 0x01, 0x06, 0x05, 0x04, 0x03, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0x09, 0x08, 0x07};
  for (size_t i = 0; i < sizeof b; i++) EXPECT_EQ(static_cast<unsigned char>(b[i]), want[i]) << i;
  EXPECT_EQ(codec::get_u16(b), 0x0102);
  EXPECT_EQ(codec::get_u32(b + 2), 0x03040506u);
  EXPECT_EQ(codec::get_u64(b + 6), 0x0708090a0b0c0d0eu);
  Decoder d(std::string_view(b, sizeof b));  // the stream reads what the primitives wrote
  EXPECT_EQ(d.u16(), 0x0102);
  EXPECT_EQ(d.u32(), 0x03040506u);
  EXPECT_EQ(d.u64(), 0x0708090a0b0c0d0eu);
  EXPECT_TRUE(d.done());
}

}  // namespace
}  // namespace hmdb
