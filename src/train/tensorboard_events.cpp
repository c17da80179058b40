#include "train/tensorboard_events.h"

#include <unistd.h>

#include <array>
#include <bit>
#include <chrono>
#include <cstring>

#include "core/error.h"

namespace garmentnet {
namespace {

constexpr std::array<uint32_t, 256> crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    table[i] = crc;
  }
  return table;
}

// Protocol buffer wire format: a field key is (number << 3) | wire type.
enum WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7F) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

void put_key(std::string& out, int field, WireType type) {
  put_varint(out, static_cast<uint64_t>(field) << 3 | type);
}

template <typename T>
void put_little_endian(std::string& out, T value) {
  static_assert(std::endian::native == std::endian::little, "event files are little-endian");
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// Event.summary (field 5): a Summary holding one Value with `tag` and the value's own field.
std::string summary_field(const std::string& tag, std::string_view value_field) {
  std::string value;
  put_bytes(value, 1, tag);
  value.append(value_field);
  std::string summary;
  put_bytes(summary, 1, value);
  std::string field;
  put_bytes(field, 5, summary);
  return field;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  static constexpr auto table = crc32c_table();
  uint32_t crc = 0xFFFFFFFFu;
  for (const char c : bytes) crc = table[(crc ^ static_cast<uint8_t>(c)) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path& folder) {
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  path_ = folder / ("events.out.tfevents." + std::to_string(seconds) + "." + host_name());
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) fail("cannot write TensorBoard events to {} (not writable?)", path_.string());
  std::string file_version;
  put_bytes(file_version, 3, "brain.Event:2");
  write_event(0, file_version);
}

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  std::string field;
  put_key(field, 2, kFixed32);
  put_little_endian(field, static_cast<float>(value));
  write_event(step, summary_field(tag, field));
}

void TensorBoardWriter::add_png_image(const std::string& tag, std::string_view png, int width,
                                      int height, int channels, int64_t step) {
  std::string image;
  put_key(image, 1, kVarint);
  put_varint(image, static_cast<uint64_t>(height));
  put_key(image, 2, kVarint);
  put_varint(image, static_cast<uint64_t>(width));
  put_key(image, 3, kVarint);
  put_varint(image, static_cast<uint64_t>(channels));
  put_bytes(image, 4, png);
  std::string field;
  put_bytes(field, 4, image);
  write_event(step, summary_field(tag, field));
}

void TensorBoardWriter::write_event(int64_t step, std::string_view content_field) {
  std::string event;
  put_key(event, 1, kFixed64);
  const double wall_time =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  put_little_endian(event, wall_time);
  put_key(event, 2, kVarint);
  put_varint(event, static_cast<uint64_t>(step));
  event.append(content_field);
  std::string record;
  put_little_endian(record, static_cast<uint64_t>(event.size()));
  put_little_endian(record, masked_crc32c(record));
  record.append(event);
  put_little_endian(record, masked_crc32c(event));
  out_.write(record.data(), static_cast<std::streamsize>(record.size()));
  out_.flush();
  if (!out_) fail("cannot write TensorBoard events to {} (disk full?)", path_.string());
}

}  // namespace garmentnet
