// core/request_table.cc — the request table's bookkeeping and snapshot encoding (see
// request_table.h).
#include "core/request_table.h"

#include "common/assert.h"
#include "hmdb/app.h"  // detail::HashSink

namespace hmdb::core {

void RequestTable::insert(std::string_view id, uint64_t time_ms, uint64_t index, uint64_t command_hash,
                          Protocol protocol, std::string_view reply) {
  HMDB_ASSERT(!id.empty() && id.size() <= kRequestIdBytesMax, "request id of %zu bytes", id.size());
  HMDB_ASSERT(entries_.empty() || entries_.back().index <= index, "request table entries out of log order");
  Entry e;
  e.id.assign(id);
  e.time_ms = time_ms;
  e.index = index;
  e.command_hash = command_hash;
  e.protocol = protocol;
  e.reply_bytes = reply.size();
  if (reply.size() <= kRequestReplyKeptBytesMax) e.reply.assign(reply);
  bytes_ += entry_bytes(e.id, e.reply.size());
  entries_.push_back(std::move(e));
  const bool fresh = by_id_.emplace(entries_.back().id, first_seq_ + entries_.size() - 1).second;
  HMDB_ASSERT(fresh, "request id inserted twice");
  while (bytes_ > kRequestTableBytesMax) {
    pop_oldest();
    stats_.evicted_by_bytes++;
  }
}

void RequestTable::pop_oldest() {
  const Entry& e = entries_.front();
  by_id_.erase(std::string_view(e.id));
  bytes_ -= entry_bytes(e.id, e.reply.size());
  entries_.pop_front();
  first_seq_++;
}

void RequestTable::clear() {
  by_id_.clear();
  entries_.clear();
  first_seq_ = 0;
  bytes_ = 0;
}

void RequestTable::save(Encoder& out) const {
  out.u8(kRequestTableFormat);
  out.varint(entries_.size());
  for (const Entry& e : entries_) {
    out.bytes(e.id);
    out.u64(e.time_ms);
    out.u64(e.index);
    out.u64(e.command_hash);
    out.u8(static_cast<uint8_t>(e.protocol));
    out.varint(e.reply_bytes);
    out.bytes(e.reply);
  }
}

bool RequestTable::load(Decoder& in) {
  clear();
  // The smallest entry: id (1 + 1), time, index, hash (24), protocol (1), reply length (1),
  // an empty reply (1).
  constexpr size_t kEntryBytesMin = 2 + 24 + 1 + 1 + 1;
  if (in.u8() != kRequestTableFormat) in.fail();
  const uint64_t n = in.count(kEntryBytesMin);
  for (uint64_t i = 0; i < n && in.ok(); i++) {
    const std::string_view id = in.bytes();
    const uint64_t time_ms = in.u64();
    const uint64_t index = in.u64();
    const uint64_t command_hash = in.u64();
    const uint8_t protocol = in.u8();
    const uint64_t reply_bytes = in.varint();
    const std::string_view reply = in.bytes();
    if (!in.ok()) break;
    const bool sound = !id.empty() && id.size() <= kRequestIdBytesMax && !find(id) &&
                       (protocol == static_cast<uint8_t>(Protocol::kResp2) ||
                        protocol == static_cast<uint8_t>(Protocol::kResp3)) &&
                       (reply_bytes <= kRequestReplyKeptBytesMax ? reply.size() == reply_bytes : reply.empty()) &&
                       (entries_.empty() || entries_.back().index <= index) &&
                       bytes_ + entry_bytes(id, reply.size()) <= kRequestTableBytesMax;
    if (!sound) {
      in.fail();
      break;
    }
    Entry e;
    e.id.assign(id);
    e.time_ms = time_ms;
    e.index = index;
    e.command_hash = command_hash;
    e.protocol = static_cast<Protocol>(protocol);
    e.reply_bytes = reply_bytes;
    e.reply.assign(reply);
    bytes_ += entry_bytes(e.id, e.reply.size());
    entries_.push_back(std::move(e));
    by_id_.emplace(entries_.back().id, first_seq_ + entries_.size() - 1);
  }
  if (!in.ok()) {
    clear();
    return false;
  }
  return true;
}

uint64_t RequestTable::digest() const {
  detail::HashSink sink;
  Encoder enc(&sink);
  save(enc);
  enc.finish();
  return sink.digest();
}

}  // namespace hmdb::core
