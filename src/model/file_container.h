// The binary container behind model files (.gnm) and backbone files: a fixed header, a JSON
// document describing the contents, then named binary sections. No torch here, so tools that only
// need a file's metadata (e.g. a model's task spec) can read it cheaply.
//
//   16 bytes  magic, ASCII, e.g. "GARMENTNET-MODEL"
//    4 bytes  format version, unsigned little-endian
//    8 bytes  length J of the JSON document, unsigned little-endian
//    4 bytes  CRC-32 of the 28 bytes above and the JSON document (format version 2 on; version 1
//             files have no such field and their document is not checked)
//    J bytes  JSON document (UTF-8); its "sections" array lists the sections that follow:
//             [{"name": "...", "bytes": n, "crc32": c}, ...]
//   sections  each section's bytes, in the listed order, nothing after the last
// So every byte is covered by a checksum: the header and document by the header's, each section
// by its own (stored in the checksummed document).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace garmentnet {

struct ContainerKind {
  std::string_view magic;        // exactly 16 ASCII characters at the start of the file
  uint32_t version = 2;          // the format version this build writes (and the newest it reads)
  uint32_t oldest_version = 1;   // the oldest format version this build still reads
  std::string_view description;  // what the file is, for messages, e.g. "garmentnet model file"
  std::string_view remedy;       // what to do when the file is not usable, for messages
};

struct ContainerContents {
  nlohmann::json document;                      // the JSON document (its "sections" included)
  std::map<std::string, std::string> sections;  // section name → bytes
};

// Writes the container atomically. `document` must be a JSON object; its "sections" entry is
// filled in here.
void write_container(const std::filesystem::path& path, const ContainerKind& kind,
                     nlohmann::json document,
                     const std::vector<std::pair<std::string, std::string>>& sections);

// Reads and checks a container: InputError naming the file if it is missing, not of this kind,
// of a format version outside [oldest_version, version], truncated or corrupt (checksums are
// verified). A version 1 file, whose document has no checksum, loads with a warning.
ContainerContents read_container(const std::filesystem::path& path, const ContainerKind& kind);

// Reads only the JSON document, checked against the header's checksum (the sections are not read
// or checked).
nlohmann::json read_container_document(const std::filesystem::path& path,
                                       const ContainerKind& kind);

// Whether the file starts with the kind's magic (false if it cannot be read).
bool has_container_magic(const std::filesystem::path& path, const ContainerKind& kind);

}  // namespace garmentnet
