// fuzz/config_fuzz.cc — libFuzzer target for the config file's line parser
// (tools/serve_config.h: `hmdb serve --config`).
//
// The input is the file's text. Properties: no crash; an error names "f.conf:LINE: " with a
// line that exists; on success every key is non-empty with no blank, keys are unique, line
// numbers increase, and writing each entry back (the value in quotes, \" and \\ escaped)
// parses to the same entries.
//
// Built two ways like the other targets: with clang -fsanitize=fuzzer (fuzz/CMakeLists.txt),
// and with -DHMDB_FUZZ_REPLAY_MAIN as a plain program that replays the corpus (tests/tools).
// `config_fuzz_replay --make-seeds DIR` writes the seed corpus (fuzz/corpus/config_fuzz).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "tools/serve_config.h"

namespace {

std::string quote(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<hmdb::tools::ConfigEntry> entries;
  const hmdb::Status s = hmdb::tools::parse_config_text(text, "f.conf", &entries);
  const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  if (!s) {
    HMDB_ASSERT(s.message().starts_with("f.conf:"), "an error without its file name");
    const long line = std::stol(s.message().substr(7));
    HMDB_ASSERT(line >= 1 && static_cast<size_t>(line) <= lines, "an error names a line that does not exist");
    return 0;
  }
  std::string again;
  int previous = 0;
  for (size_t i = 0; i < entries.size(); i++) {
    const auto& e = entries[i];
    HMDB_ASSERT(!e.key.empty() && e.key.find_first_of(" \t\n") == std::string::npos, "a bad key was taken");
    HMDB_ASSERT(e.line > previous, "line numbers do not increase");
    previous = e.line;
    for (size_t j = 0; j < i; j++) HMDB_ASSERT(entries[j].key != e.key, "a repeated key was taken");
    HMDB_ASSERT(e.value.find('\n') == std::string::npos, "a value spans lines");
    again += e.key + " " + quote(e.value) + "\n";
  }
  std::vector<hmdb::tools::ConfigEntry> reparsed;
  HMDB_ASSERT(hmdb::tools::parse_config_text(again, "f.conf", &reparsed), "written back, the entries do not parse");
  HMDB_ASSERT(reparsed.size() == entries.size(), "written back, the entries changed in number");
  for (size_t i = 0; i < entries.size(); i++)
    HMDB_ASSERT(reparsed[i].key == entries[i].key && reparsed[i].value == entries[i].value,
                "written back, an entry changed");
  return 0;
}

#ifdef HMDB_FUZZ_REPLAY_MAIN
#include <fstream>

#include "replay_main.h"

namespace {

void write_seed(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << bytes;
}

int make_seeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  write_seed(dir, "good", "# hmdb.conf\nport 7380\n  dir /var/lib/hmdb \r\nrequirepass \"p#w \\\"x\\\\\"\njoin no\n");
  write_seed(dir, "repeated", "port 1\n\nport 2\n");
  write_seed(dir, "unbalanced", "requirepass \"open\n");
  write_seed(dir, "no_value", "\t\nport \t\n");
  write_seed(dir, "after_quote", "a \"b\" c");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return hmdb::fuzz::replay_main(argc, argv, make_seeds); }
#endif
