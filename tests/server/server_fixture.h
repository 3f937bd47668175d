// tests/server/server_fixture.h — what the tests of a real server process (harness.h's
// ServerProcess) share: an INFO field's value, a data directory's files by suffix, the newest
// snapshot file's bytes, "has a reply come" without reading it, and a gtest fixture that gives
// each test a fresh directory and a server (and room for a second one), prints their logs when
// the test failed, and removes the directory.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "storage/snapshot.h"

namespace hmdb::test {

// The value of `field` in INFO all ("" if it has none).
inline std::string info_field(RespClient& c, const std::string& field) {
  RespValue v = c.call({"INFO", "all"});
  size_t p = v.str.find("\n" + field + ":");
  if (p == std::string::npos) return "";
  size_t start = p + field.size() + 2;
  return v.str.substr(start, v.str.find('\r', start) - start);
}

// The names of the files in `dir` that end in `suffix` (".hmsnap", ".hmlog", ".tmp").
inline std::vector<std::string> files_with_suffix(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(name);
  }
  return out;
}

// The newest snapshot file's bytes in `dir` ("" if there is none).
inline std::string newest_snapshot_bytes(const std::string& dir) {
  std::vector<std::string> paths;
  EXPECT_TRUE(storage::list_snapshots(storage::Env::posix(), dir, &paths));
  if (paths.empty()) return "";
  std::ifstream in(paths.back(), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// True once `c` has bytes to read (its reply came), without reading them.
inline bool reply_arrived(RespClient& c) {
  pollfd p{c.fd(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

// A test with its own directory (make_test_dir, named after the test) and server_ running
// `binary` there (not started); other_ is for a test that wants a second server. A failed
// test prints both servers' logs; the directory goes at the end.
class ServerProcessTest : public ::testing::Test {
 protected:
  explicit ServerProcessTest(std::string binary) : binary_(std::move(binary)) {}
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = make_test_dir(info->name());
    server_ = std::make_unique<ServerProcess>(binary_, dir_);
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "server log:\n" << server_->read_log() << "\n";
    if (other_ && HasFailure()) std::cerr << "other server's log:\n" << other_->read_log() << "\n";
    server_.reset();
    other_.reset();
    std::filesystem::remove_all(dir_);
  }
  // The files in server_'s data directory that end in `suffix`.
  std::vector<std::string> files(const std::string& suffix) const { return files_with_suffix(server_->data_dir(), suffix); }

  std::string binary_;
  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ServerProcess> other_;
};

}  // namespace hmdb::test
