// storage/inspect.h — `hmdb log dump` and `hmdb log verify`: read log segments and
// snapshots and say exactly what is in them and whether it is sound.
//
// Both take a data directory (every log-*.hmlog and snap-*.hmsnap in it) or one file.
// They never modify anything (a torn tail is reported, not cut).
#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>

namespace hmdb::storage {

// Bound on how many bytes of one command argument or payload the dump prints; the rest is
// summarised as a byte count (a 512 MiB value must not become a 2 GiB line).
inline constexpr size_t kDumpMaxArgBytes = 200;

// Prints every record (segment, offset, type, term, index, schema, payload size; the
// commands of normal entries as text; hard states as term/vote/commit) and snapshot
// headers with their checksum status. Returns 0 if everything could be read soundly,
// 1 otherwise (the damage is printed where it is).
int log_dump(const std::string& path_or_dir, std::ostream& out);

// Walks everything with the rules recovery applies and reports, per file, what is sound
// and what is not. Returns 0 if the server would start from this data without losing
// anything (a torn tail, which the next start cuts, is reported but sound), 1 otherwise.
int log_verify(const std::string& path_or_dir, std::ostream& out);

// Quotes bytes for a terminal: printable ASCII as is, everything else escaped (\xHH, \n,
// \", \\), in double quotes when needed; at most max_bytes are shown.
std::string escape_bytes(std::string_view bytes, size_t max_bytes = kDumpMaxArgBytes);

}  // namespace hmdb::storage
