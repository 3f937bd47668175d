// tests/core/key_slot_test.cc — the Redis Cluster hash slot: Redis' own test vectors for
// CRC16 and the slot of a key, and the hash tag rule case by case (src/cluster.c
// keyHashSlot; the expected slots were read from a real Redis 7.0 with CLUSTER KEYSLOT).
#include "core/key_slot.h"

#include <gtest/gtest.h>

#include <string>

namespace hmdb::core {
namespace {

TEST(KeySlot, Crc16OfRedisTestVector) {
  // Redis' crc16.c: "123456789" -> 0x31C3 (CRC-16/XMODEM's check value).
  EXPECT_EQ(crc16_xmodem("123456789"), 0x31C3);
  EXPECT_EQ(crc16_xmodem(""), 0);
}

TEST(KeySlot, SlotsOfPlainKeys) {
  EXPECT_EQ(key_hash_slot("123456789"), 12739u);  // 0x31C3 mod 16384
  EXPECT_EQ(key_hash_slot("foo"), 12182u);
  EXPECT_EQ(key_hash_slot("bar"), 5061u);
  EXPECT_EQ(key_hash_slot("key"), 12539u);
  EXPECT_EQ(key_hash_slot(""), 0u);
  const std::string binary("\x00\xff\x80", 3);
  EXPECT_LT(key_hash_slot(binary), kClusterSlots);
}

TEST(KeySlot, HashTagsHashOnlyTheTag) {
  EXPECT_EQ(key_hash_slot("{user1000}.following"), 3443u);
  EXPECT_EQ(key_hash_slot("user1000"), 3443u);
  EXPECT_EQ(key_hash_slot("{user1000}.followers"), key_hash_slot("user1000"));
  EXPECT_EQ(key_hash_slot("foo{bar}zap"), key_hash_slot("bar"));
  // Only the first '{' and the first '}' after it count.
  EXPECT_EQ(key_hash_slot("foo{{bar}}zap"), 4015u);
  EXPECT_EQ(key_hash_slot("{bar"), 4015u);
  EXPECT_EQ(key_hash_slot("foo{bar}{zap}"), key_hash_slot("bar"));
  EXPECT_EQ(key_hash_slot("{a}{b}"), key_hash_slot("a"));
}

TEST(KeySlot, EmptyOrUnclosedTagsHashTheWholeKey) {
  EXPECT_EQ(key_hash_slot("{}foo"), 9500u);
  EXPECT_NE(key_hash_slot("{}foo"), key_hash_slot("foo"));
  EXPECT_EQ(key_hash_slot("foo{"), 7673u);
  EXPECT_EQ(key_hash_slot("foo}bar{"), crc16_xmodem("foo}bar{") % kClusterSlots);
  EXPECT_EQ(key_hash_slot("{}{bar}"), 11272u) << "the first tag is empty";
}

}  // namespace
}  // namespace hmdb::core
