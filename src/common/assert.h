// common/assert.h — assertions that stay on in release builds (TigerBeetle style).
// HMDB_ASSERT(cond, fmt-args...) prints the condition, the place and a diagnosis, then aborts.
#pragma once

#include <cstdio>
#include <cstdlib>

#define HMDB_ASSERT(cond, ...)                                                          \
  do {                                                                                  \
    if (__builtin_expect(!(cond), 0)) {                                                 \
      std::fprintf(stderr, "hmdb: assertion failed: %s at %s:%d: ", #cond, __FILE__, __LINE__); \
      std::fprintf(stderr, "" __VA_ARGS__);                                             \
      std::fprintf(stderr, "\n");                                                       \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
