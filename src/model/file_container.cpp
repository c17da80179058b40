#include "model/file_container.h"

#include <spdlog/spdlog.h>
#include <zlib.h>

#include <array>
#include <fstream>
#include <limits>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"

namespace garmentnet {
namespace {

constexpr size_t kMagicBytes = 16;
constexpr size_t kHeaderBytes = kMagicBytes + 4 + 8;  // magic, version, document length
constexpr size_t kChecksumBytes = 4;
// The first format version whose header carries a checksum of itself and the document.
constexpr uint32_t kFirstChecksummedVersion = 2;

size_t header_bytes(uint32_t version) {
  return kHeaderBytes + (version >= kFirstChecksummedVersion ? kChecksumBytes : 0);
}

void append_little_endian(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t read_little_endian(std::string_view in, int bytes) {
  uint64_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(in[i]);
  return value;
}

uint32_t checksum(std::string_view bytes) {
  return static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(bytes.data()),
                                       static_cast<z_size_t>(bytes.size())));
}

[[noreturn]] void fail_foreign(const std::filesystem::path& path, const ContainerKind& kind) {
  fail("{} is not a {} (it does not start with '{}'); {}", path.string(), kind.description,
       kind.magic, kind.remedy);
}

// a + b, or nullopt where the sum does not fit in 64 bits (a length field of a corrupt file).
std::optional<uint64_t> checked_sum(std::optional<uint64_t> a, uint64_t b) {
  if (!a || b > std::numeric_limits<uint64_t>::max() - *a) return std::nullopt;
  return *a + b;
}

[[noreturn]] void fail_truncated(const std::filesystem::path& path, const ContainerKind& kind,
                                 std::optional<uint64_t> expected, uint64_t found) {
  fail("{} is a truncated {} ({} expected, {} bytes found); copy it again or write it anew; {}",
       path.string(), kind.description,
       expected ? fmt::format("{} bytes", *expected) : std::string("more bytes than any file has"),
       found, kind.remedy);
}

struct Head {
  nlohmann::json document;
  uint64_t document_end = 0;  // offset of the first section
  uint32_t version = 0;
};

// Checks the header and parses the document; `file_bytes` is the whole file's size and `head` at
// least its header and JSON document when available.
Head parse_head(const std::filesystem::path& path, const ContainerKind& kind, std::string_view head,
                uint64_t file_bytes) {
  if (head.size() < kMagicBytes || head.substr(0, kMagicBytes) != kind.magic)
    fail_foreign(path, kind);
  if (head.size() < kHeaderBytes) fail_truncated(path, kind, kHeaderBytes, file_bytes);
  const auto version = static_cast<uint32_t>(read_little_endian(head.substr(kMagicBytes), 4));
  if (version < kind.oldest_version || version > kind.version)
    fail(
        "{} is a {} of format version {}, but this garmentnet reads versions {} to {}; use the "
        "garmentnet release that wrote it, or {}",
        path.string(), kind.description, version, kind.oldest_version, kind.version, kind.remedy);
  const size_t header = header_bytes(version);
  const uint64_t json_bytes = read_little_endian(head.substr(kMagicBytes + 4), 8);
  if (file_bytes < header || json_bytes > file_bytes - header)
    fail_truncated(path, kind, checked_sum(header, json_bytes), file_bytes);
  const uint64_t document_end = header + json_bytes;
  if (head.size() < document_end) fail_truncated(path, kind, document_end, head.size());
  const std::string_view json = head.substr(header, json_bytes);
  if (version >= kFirstChecksummedVersion) {
    const std::string covered = std::string(head.substr(0, kHeaderBytes)) + std::string(json);
    if (read_little_endian(head.substr(kHeaderBytes), 4) != checksum(covered))
      fail(
          "{} is a corrupt {} (its header or JSON document fails its checksum); copy it again or "
          "write it anew",
          path.string(), kind.description);
  }
  nlohmann::json document = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!document.is_object() || !document.contains("sections") || !document["sections"].is_array())
    fail("{} is a corrupt {} (its JSON header cannot be read); {}", path.string(), kind.description,
         kind.remedy);
  return {std::move(document), document_end, version};
}

}  // namespace

void write_container(const std::filesystem::path& path, const ContainerKind& kind,
                     nlohmann::json document,
                     const std::vector<std::pair<std::string, std::string>>& sections) {
  document["sections"] = nlohmann::json::array();
  for (const auto& [name, bytes] : sections)
    document["sections"].push_back(
        {{"name", name}, {"bytes", bytes.size()}, {"crc32", checksum(bytes)}});
  const std::string json = document.dump(2);
  std::string header(kind.magic);
  append_little_endian(header, kind.version, 4);
  append_little_endian(header, json.size(), 8);
  if (kind.version >= kFirstChecksummedVersion)
    append_little_endian(header, checksum(header + json), 4);
  write_atomically(path, [&](const std::filesystem::path& temp) {
    std::ofstream out(temp, std::ios::binary);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(json.data(), static_cast<std::streamsize>(json.size()));
    for (const auto& [name, bytes] : sections)
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) fail("cannot write {} (disk full or not writable?)", temp.string());
  });
}

ContainerContents read_container(const std::filesystem::path& path, const ContainerKind& kind) {
  const std::string bytes = read_file(path);
  Head head = parse_head(path, kind, bytes, bytes.size());
  if (head.version < kFirstChecksummedVersion)
    spdlog::warn(
        "{} is a {} of format version {}, whose JSON document has no checksum (its sections' "
        "checksums are still checked); write it anew with this garmentnet to protect all of it",
        path.string(), kind.description, head.version);
  uint64_t offset = head.document_end;
  ContainerContents contents;
  contents.document = std::move(head.document);
  for (const auto& section : contents.document["sections"]) {
    if (!section.is_object() || !section.contains("name") || !section.contains("bytes") ||
        !section["name"].is_string() || !section["bytes"].is_number_unsigned())
      fail("{} is a corrupt {} (bad section list); {}", path.string(), kind.description,
           kind.remedy);
    const uint64_t size = section["bytes"].get<uint64_t>();
    if (size > bytes.size() - offset) {
      std::optional<uint64_t> expected = head.document_end;
      for (const auto& s : contents.document["sections"])
        expected = checked_sum(expected, s.value("bytes", uint64_t{0}));
      fail_truncated(path, kind, expected, bytes.size());
    }
    std::string data = bytes.substr(offset, size);
    offset += size;
    if (section.value("crc32", uint32_t{0}) != checksum(data))
      fail("{} is a corrupt {} (section '{}' fails its checksum); copy it again or write it anew",
           path.string(), kind.description, section["name"].get<std::string>());
    contents.sections[section["name"].get<std::string>()] = std::move(data);
  }
  if (offset != bytes.size())
    fail("{} is a corrupt {} ({} unexpected bytes after the last section); {}", path.string(),
         kind.description, bytes.size() - offset, kind.remedy);
  return contents;
}

nlohmann::json read_container_document(const std::filesystem::path& path,
                                       const ContainerKind& kind) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}: no such file or not readable", path.string());
  std::error_code error;
  const uint64_t file_bytes = std::filesystem::file_size(path, error);
  std::string head(kHeaderBytes, '\0');
  in.read(head.data(), kHeaderBytes);
  head.resize(static_cast<size_t>(in.gcount()));
  if (head.size() == kHeaderBytes && head.substr(0, kMagicBytes) == kind.magic) {
    const size_t header = header_bytes(
        static_cast<uint32_t>(read_little_endian(std::string_view(head).substr(kMagicBytes), 4)));
    const uint64_t json_bytes =
        read_little_endian(std::string_view(head).substr(kMagicBytes + 4), 8);
    if (file_bytes >= header && json_bytes <= file_bytes - header) {
      head.resize(header + json_bytes);
      in.read(head.data() + kHeaderBytes,
              static_cast<std::streamsize>(header - kHeaderBytes + json_bytes));
      head.resize(kHeaderBytes + static_cast<size_t>(in.gcount()));
    }
  }
  return parse_head(path, kind, head, file_bytes).document;
}

bool has_container_magic(const std::filesystem::path& path, const ContainerKind& kind) {
  std::ifstream in(path, std::ios::binary);
  std::array<char, kMagicBytes> magic{};
  in.read(magic.data(), kMagicBytes);
  return in.gcount() == static_cast<std::streamsize>(kMagicBytes) &&
         std::string_view(magic.data(), kMagicBytes) == kind.magic;
}

}  // namespace garmentnet
