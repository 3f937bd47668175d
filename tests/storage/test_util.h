// tests/storage/test_util.h — helpers shared by the storage tests: a temporary directory
// that is removed at the end, and small file helpers.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace hmdb::storage::testing {

// A fresh directory under $TMPDIR (or /tmp), removed when the object dies.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/hmdb-storage-test-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr) << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Heavy (exhaustive) variants of the tests run with HMDB_STORAGE_HEAVY=1.
inline bool heavy() {
  const char* v = std::getenv("HMDB_STORAGE_HEAVY");
  return v != nullptr && std::string(v) == "1";
}

inline uint64_t file_size(const std::string& path) { return std::filesystem::file_size(path); }

}  // namespace hmdb::storage::testing
