// tools/serve_config.cc — the config file's lines (see serve_config.h).
#include "tools/serve_config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace hmdb::tools {

namespace {

bool blank(char c) { return c == ' ' || c == '\t'; }

Status error_at(std::string_view file, int line, const std::string& why) {
  return Status::invalid_argument(std::string(file) + ":" + std::to_string(line) + ": " + why);
}

}  // namespace

Status parse_config_text(std::string_view text, std::string_view file_name, std::vector<ConfigEntry>* out) {
  out->clear();
  int number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    number++;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t i = 0;
    while (i < line.size() && blank(line[i])) i++;
    if (i == line.size() || line[i] == '#') continue;
    const size_t key_start = i;
    while (i < line.size() && !blank(line[i])) i++;
    ConfigEntry e;
    e.line = number;
    e.key = std::string(line.substr(key_start, i - key_start));
    for (char c : e.key)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
        return error_at(file_name, number, "a key is a flag name: letters, digits and dashes");
    while (i < line.size() && blank(line[i])) i++;
    std::string_view rest = line.substr(i);
    while (!rest.empty() && blank(rest.back())) rest.remove_suffix(1);
    if (rest.empty()) return error_at(file_name, number, "'" + e.key + "' has no value (write \"\" for an empty one)");
    if (rest.front() == '"') {
      size_t k = 1;
      bool closed = false;
      for (; k < rest.size(); k++) {
        if (rest[k] == '\\' && k + 1 < rest.size() && (rest[k + 1] == '"' || rest[k + 1] == '\\')) {
          e.value += rest[++k];
        } else if (rest[k] == '"') {
          closed = true;
          break;
        } else {
          e.value += rest[k];
        }
      }
      if (!closed) return error_at(file_name, number, "'" + e.key + "': unbalanced quotes in the value");
      if (k + 1 != rest.size())
        return error_at(file_name, number, "'" + e.key + "': characters after the closing quote");
    } else {
      e.value = std::string(rest);
    }
    for (const ConfigEntry& seen : *out)
      if (seen.key == e.key)
        return error_at(file_name, number, "'" + e.key + "' is already set at line " + std::to_string(seen.line));
    out->push_back(std::move(e));
  }
  return Status::ok();
}

Status read_config_file(const std::string& path, std::vector<ConfigEntry>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::invalid_argument("cannot read the config file " + path + ": " + std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  if (text.size() > kConfigFileBytesMax)
    return Status::invalid_argument(path + ": larger than " + std::to_string(kConfigFileBytesMax) +
                                    " bytes: not a config file");
  return parse_config_text(text, path, out);
}

}  // namespace hmdb::tools
