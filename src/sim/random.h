// sim/random.h — the simulator's only source of randomness: one seeded PRNG per run.
//
// Everything a run does (delays, faults, client choices, the cores' election-timeout seeds)
// is drawn from one Rng seeded with the run's 64-bit seed, so a seed replays exactly.
// xoshiro256** (Blackman & Vigna), seeded through splitmix64 as its authors recommend.
// Never std::random_device, never the clock.
#pragma once

#include <cstdint>

namespace hmdb::sim {

inline uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t x = seed;
    for (auto& w : s_) w = splitmix64(x);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n). REQUIRES: n > 0. Lemire's multiply-shift; the tiny bias is irrelevant
  // here and the result is deterministic, which is what matters.
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }
  // Uniform in [lo, hi]. REQUIRES: lo <= hi.
  uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  // True with probability per_million / 1e6 (integers: no floating point in decisions).
  bool chance(uint32_t per_million) { return below(1000000) < per_million; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace hmdb::sim
