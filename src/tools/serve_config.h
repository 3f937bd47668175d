// tools/serve_config.h — the config file of `hmdb serve --config FILE` (docs/operations.md
// "Config file"): Redis-style lines `key value`, where every key is a long flag name of
// `hmdb serve` without its dashes (`port 7380`, `requirepass "s3cret"`), and a flag that
// takes no value (`--join`) is written `join yes` or `join no`.
//
// The format, exactly: a line is blank, a comment (its first non-blank character is `#`),
// or a key, blanks (spaces or tabs), and a value that runs to the end of the line (trailing
// blanks dropped). A value may be written in double quotes, with \" and \\ inside, for one
// with leading or trailing blanks or that is empty; a `#` after a key is part of the value
// (a password may contain one). A key may appear once. Lines end with LF or CRLF.
//
// This file only reads the text (a pure function, unit-tested and fuzzed); which keys exist
// and what values they take is the command line's business (tools/main.cc checks each entry
// with the flag's own definition and reports FILE:LINE with the reason).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace hmdb::tools {

struct ConfigEntry {
  std::string key;
  std::string value;
  int line = 0;  // 1-based
};

// A config file larger than this is refused: it is a handful of lines, not data.
inline constexpr size_t kConfigFileBytesMax = 1 << 20;

// Parses `text`; an error's message is "FILE:LINE: why" (FILE is `file_name`).
Status parse_config_text(std::string_view text, std::string_view file_name, std::vector<ConfigEntry>* out);
// Reads and parses the file at `path`.
Status read_config_file(const std::string& path, std::vector<ConfigEntry>* out);

}  // namespace hmdb::tools
