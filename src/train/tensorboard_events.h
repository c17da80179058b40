// TensorBoard event files, written by hand: no TensorFlow or protobuf library is needed. Each
// record is framed as TensorBoard's reader expects (uint64 length, masked CRC-32C of the length,
// the bytes, masked CRC-32C of the bytes) and holds an `Event` protocol buffer encoded here
// (wall_time = 1, step = 2, file_version = 3, summary = 5; Summary.Value: tag = 1,
// simple_value = 2, image = 4). Every record is flushed when written, so a run that crashes
// leaves a readable file. Torch-free.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace garmentnet {

// CRC-32C (Castagnoli), as TFRecord and TensorBoard use it, and their "masked" form.
uint32_t crc32c(std::string_view bytes);
uint32_t masked_crc32c(std::string_view bytes);

class TensorBoardWriter {
 public:
  // Creates `folder` and a new `events.out.tfevents.<seconds>.<host>` in it, starting with the
  // file-version event. InputError when it cannot be written.
  explicit TensorBoardWriter(const std::filesystem::path& folder);

  void add_scalar(const std::string& tag, double value, int64_t step);
  // An image given as PNG bytes, `width` × `height` pixels with `channels` (3 RGB, 4 RGBA).
  void add_png_image(const std::string& tag, std::string_view png, int width, int height,
                     int channels, int64_t step);

  const std::filesystem::path& path() const { return path_; }

 private:
  // Writes one Event of wall time, `step` and `content_field` (its encoded file_version or
  // summary field) as one framed record, flushed.
  void write_event(int64_t step, std::string_view content_field);

  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace garmentnet
