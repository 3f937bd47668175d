// apps/kv/lazy_free.cc — kv::Graveyard: deleted big values and flushed keyspaces, freed a
// bounded amount of work at a time so no command holds the loop for long (issue 16: DEL
// of a key with 10 M elements or FLUSHALL of 20 M keys took one turn of seconds).
#include <algorithm>
#include <iterator>
#include <type_traits>

#include "kv/kv.h"

namespace hmdb::kv {
namespace {

size_t elements(const Value& v) {
  return std::visit(
      [](const auto& x) -> size_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, String>) {
          return 0;
        } else if constexpr (std::is_same_v<T, std::unique_ptr<ZSet>>) {
          return x ? x->order.size() : 0;
        } else {
          return x.size();
        }
      },
      v);
}

// Destroys up to `budget` of v's elements (and then, a step at a time, the memory that held
// them: a big hash's, set's or sorted set's node slabs and bucket array); true once v holds
// none and no memory, so that destroying it costs nothing.
bool clear_some(Value& v, size_t budget, size_t* work) {
  return std::visit(
      [&](auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, String>) {
          *work += 1;
          return true;
        } else if constexpr (std::is_same_v<T, std::unique_ptr<ZSet>>) {
          if (!x) return true;
          *work += x->order.clear_some(budget) + 1;
          if (!x->order.cleared()) return false;
          x.reset();
          return true;
        } else if constexpr (std::is_same_v<T, List>) {
          *work += x.clear_some(budget) + 1;
          return x.empty();
        } else {
          *work += x.clear_some(budget) + 1;
          return x.cleared();
        }
      },
      v);
}

}  // namespace

void Graveyard::bury_if_big(Value& v) {
  if (elements(v) <= kLazyFreeElementsMin) return;
  values_.push_back(std::move(v));
  v.emplace<String>();  // what was moved from is empty, but say so
}

void Graveyard::bury_keyspace(KeyTable<Value>& keys, KeyTable<uint64_t>& expires, ExpiryOrder& order) {
  if (!keys.empty()) tables_.push_back(std::move(keys));
  if (!expires.empty()) deadline_tables_.push_back(std::move(expires));
  if (!order.empty()) orders_.push_back(std::move(order));
  order.clear();  // moved from: empty in practice, and now by contract
}

size_t Graveyard::step(size_t budget) {
  size_t work = 0;
  while (work < budget) {
    if (!values_.empty()) {
      if (clear_some(values_.back(), budget - work, &work)) values_.pop_back();
    } else if (!tables_.empty()) {
      KeyTable<Value>& t = tables_.back();
      // A big value inside a flushed table is buried on its own, not destroyed in one go.
      work += t.drain(budget - work, [this](Value&& v) {
        if (elements(v) > kLazyFreeElementsMin) values_.push_back(std::move(v));
      });
      if (t.drained()) tables_.pop_back();
    } else if (!deadline_tables_.empty()) {
      KeyTable<uint64_t>& t = deadline_tables_.back();
      work += t.drain(budget - work, [](uint64_t&&) {});
      if (t.drained()) deadline_tables_.pop_back();
    } else if (!orders_.empty()) {
      ExpiryOrder& o = orders_.back();
      const size_t n = std::min(budget - work, o.size());
      auto first = o.begin();
      o.erase(first, std::next(first, static_cast<std::ptrdiff_t>(n)));
      work += n + 1;
      if (o.empty()) orders_.pop_back();
    } else {
      break;
    }
  }
  work_total_ += work;
  return work;
}

size_t Graveyard::step_for_housekeeping(const ApplyContext& ctx) {
  if (!ctx.turn_budget) return step(kLazyFreeHousekeepingWork);
  size_t work = 0;
  do {
    work += step(std::min(kLazyFreeBudgetStepWork, kLazyFreeHousekeepingWorkMax - work));
  } while (!empty() && work < kLazyFreeHousekeepingWorkMax && !ctx.turn_budget_spent());
  return work;
}

}  // namespace hmdb::kv
