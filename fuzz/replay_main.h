// fuzz/replay_main.h — the corpus-replay main() shared by every fuzz target when it is
// built as a plain program (-DHMDB_FUZZ_REPLAY_MAIN, gcc, no libFuzzer): CI replays the
// seed corpus through the target's LLVMFuzzerTestOneInput without clang.
//
// Usage: <target>_replay <corpus file or dir>... | --make-seeds <dir>
// REQUIRES: the including file defines LLVMFuzzerTestOneInput and
//           `int make_seeds(const std::filesystem::path& dir)` (writes the seed corpus).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace hmdb::fuzz {

// Feeds every file named (directories recursively) to the target; exit 1 if none was found.
inline int replay_main(int argc, char** argv, int (*make_seeds)(const std::filesystem::path& dir)) {
  if (argc == 3 && std::string_view(argv[1]) == "--make-seeds") return make_seeds(argv[2]);
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " <corpus file or dir>... | --make-seeds <dir>\n";
    return 2;
  }
  size_t inputs = 0;
  for (int i = 1; i < argc; i++) {
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(argv[i])) {
      for (auto& e : std::filesystem::recursive_directory_iterator(argv[i]))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.emplace_back(argv[i]);
    }
    for (auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string bytes = ss.str();
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      inputs++;
    }
  }
  std::cout << "replayed " << inputs << " inputs\n";
  return inputs > 0 ? 0 : 1;
}

}  // namespace hmdb::fuzz
