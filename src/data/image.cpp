#include "data/image.h"

#include <jpeglib.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "core/atomic_file.h"
#include "core/error.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

enum class ImageFormat { Jpeg, Png, WebP, Unknown };

bool starts_with(std::string_view bytes, std::string_view prefix) {
  return bytes.size() >= prefix.size() && bytes.substr(0, prefix.size()) == prefix;
}

ImageFormat sniff_format(std::string_view bytes) {
  if (starts_with(bytes, "\xFF\xD8")) return ImageFormat::Jpeg;
  if (starts_with(bytes, std::string_view("\x89PNG\r\n\x1A\n", 8))) return ImageFormat::Png;
  if (bytes.size() >= 12 && starts_with(bytes, "RIFF") && bytes.substr(8, 4) == "WEBP") {
    return ImageFormat::WebP;
  }
  return ImageFormat::Unknown;
}

uint32_t byte_at(std::string_view bytes, size_t offset) {
  return static_cast<uint8_t>(bytes[offset]);
}

// The first bytes in hex, to show what a file that is not an image starts with.
std::string hex_prefix(std::string_view bytes) {
  std::string hex;
  for (size_t i = 0; i < std::min<size_t>(bytes.size(), 8); ++i) {
    hex += fmt::format("{}{:02x}", i == 0 ? "" : " ", byte_at(bytes, i));
  }
  return hex;
}

uint32_t read_be16(std::string_view bytes, size_t offset) {
  return byte_at(bytes, offset) << 8 | byte_at(bytes, offset + 1);
}

uint32_t read_be32(std::string_view bytes, size_t offset) {
  return read_be16(bytes, offset) << 16 | read_be16(bytes, offset + 2);
}

uint32_t read_le16(std::string_view bytes, size_t offset) {
  return byte_at(bytes, offset) | byte_at(bytes, offset + 1) << 8;
}

uint32_t read_le24(std::string_view bytes, size_t offset) {
  return read_le16(bytes, offset) | byte_at(bytes, offset + 2) << 16;
}

bool is_jpeg_frame_marker(uint32_t marker) {
  // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

bool is_standalone_jpeg_marker(uint32_t marker) {
  return marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7);  // TEM, RST0..RST7: no length
}

// Walks the JPEG segments from SOI. Calls `on_segment(marker, payload_offset, payload_length)`
// for each segment with a length field, until it returns false or the scan data begins (SOS).
// Returns the offset just after the SOS header, or 0 if the walk stopped before one.
template <typename OnSegment>
size_t walk_jpeg_segments(std::string_view bytes, std::string_view source, OnSegment on_segment) {
  size_t offset = 2;  // after SOI
  while (true) {
    if (offset >= bytes.size()) fail("{}: truncated JPEG (ends inside its header)", source);
    if (byte_at(bytes, offset) != 0xFF) {
      fail("{}: corrupt JPEG header (expected a marker at byte {})", source, offset);
    }
    while (offset < bytes.size() && byte_at(bytes, offset) == 0xFF) ++offset;  // fill bytes
    if (offset >= bytes.size()) fail("{}: truncated JPEG (ends inside its header)", source);
    const uint32_t marker = byte_at(bytes, offset++);
    if (is_standalone_jpeg_marker(marker)) continue;
    if (marker == 0xD9) fail("{}: corrupt JPEG (image ends before any frame)", source);
    if (offset + 2 > bytes.size()) fail("{}: truncated JPEG (ends inside its header)", source);
    const size_t length = read_be16(bytes, offset);
    if (length < 2) fail("{}: corrupt JPEG header (segment length {})", source, length);
    if (offset + length > bytes.size()) {
      fail("{}: truncated JPEG (a header segment runs past the end of the data)", source);
    }
    if (!on_segment(marker, offset + 2, length - 2)) return 0;
    offset += length;
    if (marker == 0xDA) return offset;
  }
}

ImageSize probe_jpeg(std::string_view bytes, std::string_view source) {
  ImageSize size;
  bool found = false;
  walk_jpeg_segments(bytes, source, [&](uint32_t marker, size_t payload, size_t length) {
    if (marker == 0xDA) fail("{}: corrupt JPEG (scan data before the frame header)", source);
    if (!is_jpeg_frame_marker(marker)) return true;
    if (length < 5) fail("{}: corrupt JPEG frame header", source);
    size.height = static_cast<int>(read_be16(bytes, payload + 1));
    size.width = static_cast<int>(read_be16(bytes, payload + 3));
    found = true;
    return false;
  });
  if (!found) fail("{}: corrupt JPEG (no frame header)", source);
  return size;
}

// libjpeg decodes a truncated file into an image whose missing rows are grey, with only a warning
// on stderr. Such images would silently poison training data, so a JPEG whose scan data has no
// end-of-image marker is refused instead.
bool jpeg_has_end_marker(std::string_view bytes, std::string_view source) {
  const size_t scan_start =
      walk_jpeg_segments(bytes, source, [](uint32_t, size_t, size_t) { return true; });
  // Entropy-coded data escapes 0xFF as FF 00, so FF D9 there can only be the real EOI.
  return scan_start > 0 && bytes.find("\xFF\xD9", scan_start) != std::string_view::npos;
}

ImageSize probe_png(std::string_view bytes, std::string_view source) {
  if (bytes.size() < 24) fail("{}: truncated PNG (ends inside its header)", source);
  if (bytes.substr(12, 4) != "IHDR") fail("{}: corrupt PNG (first chunk is not IHDR)", source);
  const uint32_t width = read_be32(bytes, 16);
  const uint32_t height = read_be32(bytes, 20);
  if (width > INT32_MAX || height > INT32_MAX) {
    fail("{}: corrupt PNG header (size {}×{})", source, width, height);
  }
  return {static_cast<int>(width), static_cast<int>(height)};
}

ImageSize probe_webp(std::string_view bytes, std::string_view source) {
  if (bytes.size() < 30) fail("{}: truncated WebP (ends inside its header)", source);
  const std::string_view chunk = bytes.substr(12, 4);
  if (chunk == "VP8 ") {  // lossy: 3-byte frame tag, start code, 14-bit sizes
    if (bytes.substr(23, 3) != "\x9D\x01\x2A")
      fail("{}: corrupt WebP (bad VP8 start code)", source);
    return {static_cast<int>(read_le16(bytes, 26) & 0x3FFF),
            static_cast<int>(read_le16(bytes, 28) & 0x3FFF)};
  }
  if (chunk == "VP8L") {  // lossless: signature byte, then 14-bit (size - 1) fields
    if (byte_at(bytes, 20) != 0x2F) fail("{}: corrupt WebP (bad VP8L signature)", source);
    const uint32_t bits = read_le16(bytes, 21) | read_le16(bytes, 23) << 16;
    return {static_cast<int>((bits & 0x3FFF) + 1), static_cast<int>(((bits >> 14) & 0x3FFF) + 1)};
  }
  if (chunk == "VP8X") {  // extended: 24-bit (canvas size - 1) fields
    return {static_cast<int>(read_le24(bytes, 24) + 1), static_cast<int>(read_le24(bytes, 27) + 1)};
  }
  fail("{}: unsupported WebP chunk '{}'", source, chunk);
}

// OpenCV reports decoder exceptions through its logger as well as to the caller; the caller turns
// them into InputErrors, so the logger's copies are just noise on a server's stderr.
void quiet_opencv_logging() {
  static std::once_flag once;
  std::call_once(once,
                 [] { cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR); });
}

// Reduced JPEG decoding: the largest 1/2^k (k ≤ 3) that keeps the shorter side ≥ target, as the
// numerator of a scale over 8 (8 = full size).
int jpeg_scale_eighths(ImageSize size, int target_side) {
  if (target_side <= 0) return 8;
  const int shorter = std::min(size.width, size.height);
  if (shorter >= 8 * target_side) return 1;
  if (shorter >= 4 * target_side) return 2;
  if (shorter >= 2 * target_side) return 4;
  return 8;
}

// The EXIF orientation (1-8; 1 = as stored) of a JPEG's first APP1 Exif segment, 1 without one.
// Anything malformed in the segment counts as no orientation, as other decoders treat it.
int jpeg_exif_orientation(std::string_view bytes, std::string_view source) {
  int orientation = 1;
  walk_jpeg_segments(bytes, source, [&](uint32_t marker, size_t payload, size_t length) {
    if (marker != 0xE1) return marker != 0xDA && !is_jpeg_frame_marker(marker);
    const std::string_view exif = bytes.substr(payload, length);
    if (exif.size() < 14 || exif.substr(0, 6) != std::string_view("Exif\0\0", 6)) return true;
    const std::string_view tiff = exif.substr(6);
    const bool little = tiff.substr(0, 2) == "II";
    if (!little && tiff.substr(0, 2) != "MM") return false;
    const auto u16 = [&](size_t at) { return little ? read_le16(tiff, at) : read_be16(tiff, at); };
    const auto u32 = [&](size_t at) {
      return little ? read_le16(tiff, at) | read_le16(tiff, at + 2) << 16 : read_be32(tiff, at);
    };
    const size_t ifd = u32(4);
    if (ifd + 2 > tiff.size()) return false;
    const size_t entries = u16(ifd);
    for (size_t i = 0; i < entries && ifd + 2 + 12 * (i + 1) <= tiff.size(); ++i) {
      const size_t entry = ifd + 2 + 12 * i;
      if (u16(entry) == 0x0112 && u16(entry + 2) == 3) {  // Orientation, SHORT
        const uint32_t value = u16(entry + 8);
        if (value >= 1 && value <= 8) orientation = static_cast<int>(value);
        break;
      }
    }
    return false;
  });
  return orientation;
}

// Turns a stored image upright as its EXIF orientation says (the TIFF/EXIF definitions).
cv::Mat apply_exif_orientation(cv::Mat image, int orientation) {
  switch (orientation) {
    case 2:
      cv::flip(image, image, 1);
      break;
    case 3:
      cv::flip(image, image, -1);
      break;
    case 4:
      cv::flip(image, image, 0);
      break;
    case 5:
      cv::transpose(image, image);
      break;
    case 6:
      cv::transpose(image, image);
      cv::flip(image, image, 1);
      break;
    case 7:
      cv::transpose(image, image);
      cv::flip(image, image, -1);
      break;
    case 8:
      cv::transpose(image, image);
      cv::flip(image, image, 0);
      break;
    default:
      break;
  }
  return image;
}

// libjpeg reports fatal errors through a callback that must not return: it jumps back to the
// decoding function with the message kept here.
struct JpegDecoder {
  jpeg_decompress_struct info{};
  jpeg_error_mgr error_manager{};
  std::jmp_buf on_error{};
  char message[JMSG_LENGTH_MAX] = {};
  bool created = false;

  ~JpegDecoder() {
    if (created) jpeg_destroy_decompress(&info);
  }
};

[[noreturn]] void jpeg_fatal_error(j_common_ptr info) {
  auto* decoder = reinterpret_cast<JpegDecoder*>(info->client_data);
  (*info->err->format_message)(info, decoder->message);
  std::longjmp(decoder->on_error, 1);
}

// Warnings (e.g. corrupt entropy data that libjpeg decodes around) would go to stderr; a server's
// log is no place for them, and truncated files are refused before decoding.
void jpeg_ignore_message(j_common_ptr) {}

// Decodes a JPEG straight into RGB at `scale_eighths`/8 of its size with libjpeg(-turbo): about
// 30% less work than going through OpenCV, which converts every row to BGR in a scalar loop that
// we would then convert back. An empty Mat for CMYK/YCCK files, which libjpeg cannot turn into
// RGB (OpenCV decodes those).
cv::Mat decode_jpeg_rgb(std::string_view bytes, std::string_view source, int scale_eighths) {
  // Everything with a destructor exists before setjmp, so the jump skips no destructor.
  const auto decoder = std::make_unique<JpegDecoder>();
  cv::Mat rgb;
  jpeg_decompress_struct& info = decoder->info;
  info.err = jpeg_std_error(&decoder->error_manager);
  decoder->error_manager.error_exit = jpeg_fatal_error;
  decoder->error_manager.output_message = jpeg_ignore_message;
  if (setjmp(decoder->on_error) != 0)
    fail("{}: image cannot be decoded ({})", source, decoder->message);
  jpeg_create_decompress(&info);
  decoder->created = true;
  info.client_data = decoder.get();
  jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) return rgb;
  info.out_color_space = JCS_RGB;
  info.scale_num = static_cast<unsigned int>(scale_eighths);
  info.scale_denom = 8;
  jpeg_start_decompress(&info);
  if (info.output_components != 3) fail("{}: image cannot be decoded (not RGB)", source);
  rgb.create(static_cast<int>(info.output_height), static_cast<int>(info.output_width), CV_8UC3);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = rgb.ptr<uint8_t>(static_cast<int>(info.output_scanline));
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  return rgb;
}

// The OpenCV flag decoding at `scale_eighths`/8 (1, 2, 4 or 8).
int opencv_read_flag(int scale_eighths) {
  switch (scale_eighths) {
    case 1:
      return cv::IMREAD_REDUCED_COLOR_8;
    case 2:
      return cv::IMREAD_REDUCED_COLOR_4;
    case 4:
      return cv::IMREAD_REDUCED_COLOR_2;
    default:
      return cv::IMREAD_COLOR;
  }
}

void require_rgb8(const cv::Mat& image, const char* function) {
  if (image.type() != CV_8UC3 || image.empty()) {
    throw std::invalid_argument(std::string(function) + ": expects a non-empty 8-bit RGB image");
  }
}

// Uniform double in [low, high) from the generator's raw output, so results do not depend on the
// standard library's distribution implementation.
double uniform(std::mt19937& rng, double low, double high) {
  return low + (high - low) * (static_cast<double>(rng()) / 4294967296.0);
}

template <typename T>
T field_or(const nlohmann::json& json, const char* key, T fallback, std::string_view context) {
  if (!json.contains(key)) return fallback;
  try {
    return json.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: field '{}' has the wrong type ({})", context, key, json.at(key).dump());
  }
}

void require_object(const nlohmann::json& json, std::string_view context) {
  if (!json.is_object()) fail("{}: expected a JSON object, got {}", context, json.dump());
}

// The choice named by `json[key]` (`fallback` when absent); InputError naming the choices.
template <typename Choice, std::size_t N>
Choice choice_field(const nlohmann::json& json, const char* key, std::string_view fallback,
                    const ChoiceNames<Choice, N>& names, std::string_view context) {
  const auto given = field_or<std::string>(json, key, std::string(fallback), context);
  if (const auto choice = names.find(given)) return *choice;
  fail("{}: {} must be {}, not '{}'", context, key, names.listed(), given);
}

}  // namespace

std::string_view name_of(ResizeMode mode) { return kResizeModes.name_of(mode); }
std::string_view name_of(ShrinkFilter filter) { return kShrinkFilters.name_of(filter); }

ImageSize probe_image_size(std::string_view bytes, std::string_view source) {
  if (bytes.empty()) fail("{}: image is empty (0 bytes)", source);
  ImageSize size;
  switch (sniff_format(bytes)) {
    case ImageFormat::Jpeg:
      size = probe_jpeg(bytes, source);
      break;
    case ImageFormat::Png:
      size = probe_png(bytes, source);
      break;
    case ImageFormat::WebP:
      size = probe_webp(bytes, source);
      break;
    case ImageFormat::Unknown:
      fail("{}: not a JPEG, PNG or WebP image (it starts with bytes {})", source,
           hex_prefix(bytes));
  }
  if (size.width <= 0 || size.height <= 0) {
    fail("{}: image header gives an empty size ({}×{})", source, size.width, size.height);
  }
  return size;
}

namespace {

// The size in the header, once the file and its pixels are within `limits` (InputError if not).
ImageSize checked_image_size(std::string_view bytes, std::string_view source,
                             const ImageLimits& limits) {
  if (bytes.size() > limits.max_file_bytes) {
    fail("{}: image is {} bytes, more than the limit of {} bytes", source, bytes.size(),
         limits.max_file_bytes);
  }
  const ImageSize size = probe_image_size(bytes, source);
  const int64_t pixels = int64_t{size.width} * size.height;
  if (pixels > limits.max_pixels) {
    fail("{}: image is {}×{} = {} pixels, more than the limit of {} pixels", source, size.width,
         size.height, pixels, limits.max_pixels);
  }
  return size;
}

}  // namespace

int64_t decoded_pixels(std::string_view bytes, std::string_view source, const ImageLimits& limits,
                       int target_side) {
  const ImageSize size = checked_image_size(bytes, source, limits);
  const int64_t eighths =
      sniff_format(bytes) == ImageFormat::Jpeg ? jpeg_scale_eighths(size, target_side) : 8;
  return (int64_t{size.width} * eighths / 8) * (int64_t{size.height} * eighths / 8);
}

cv::Mat decode_image(std::string_view bytes, std::string_view source, const ImageLimits& limits,
                     int target_side) {
  const ImageSize size = checked_image_size(bytes, source, limits);
  int flag = cv::IMREAD_COLOR;
  if (sniff_format(bytes) == ImageFormat::Jpeg) {
    if (!jpeg_has_end_marker(bytes, source)) {
      fail("{}: truncated JPEG (no end-of-image marker); the file is incomplete", source);
    }
    const int scale_eighths = jpeg_scale_eighths(size, target_side);
    cv::Mat rgb = decode_jpeg_rgb(bytes, source, scale_eighths);
    if (!rgb.empty()) return apply_exif_orientation(rgb, jpeg_exif_orientation(bytes, source));
    flag = opencv_read_flag(scale_eighths);
  }
  quiet_opencv_logging();
  cv::Mat bgr;
  try {
    // imdecode takes a non-const Mat header but only reads from it.
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1,
                         const_cast<char*>(bytes.data()));
    bgr = cv::imdecode(buffer, flag);
  } catch (const cv::Exception& error) {
    fail("{}: image cannot be decoded ({})", source, error.what());
  }
  if (bgr.empty() || bgr.type() != CV_8UC3) {
    fail("{}: image cannot be decoded (corrupt or truncated data)", source);
  }
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

cv::Mat load_image(const fs::path& path, const ImageLimits& limits, int target_side) {
  std::error_code error;
  const auto status = fs::status(path, error);
  if (error || !fs::exists(status)) fail("image {} does not exist", path.string());
  if (!fs::is_regular_file(status)) fail("image {} is not a regular file", path.string());
  const auto file_size = fs::file_size(path, error);
  if (error) fail("cannot read image {}: {}", path.string(), error.message());
  if (file_size > limits.max_file_bytes) {
    fail("image {} is {} bytes, more than the limit of {} bytes", path.string(), file_size,
         limits.max_file_bytes);
  }
  return decode_image(read_file(path), path.string(), limits, target_side);
}

cv::Mat resize_for_model(const cv::Mat& rgb, const Preprocessing& pre) {
  require_rgb8(rgb, "resize_for_model");
  const auto interpolation = [&pre](double scale_x, double scale_y) {
    // Area averaging avoids aliasing when shrinking; it is blocky when enlarging.
    if (scale_x > 1.0 || scale_y > 1.0) return cv::INTER_LINEAR;
    const bool below_twice = scale_x > 0.5 && scale_y > 0.5;
    return pre.shrink == ShrinkFilter::Linear && below_twice ? cv::INTER_LINEAR : cv::INTER_AREA;
  };
  if (pre.resize == ResizeMode::Stretch) {
    if (rgb.cols == pre.width && rgb.rows == pre.height) return rgb.clone();
    cv::Mat out;
    cv::resize(rgb, out, cv::Size(pre.width, pre.height), 0, 0,
               interpolation(double(pre.width) / rgb.cols, double(pre.height) / rgb.rows));
    return out;
  }
  const double scale = std::min(double(pre.width) / rgb.cols, double(pre.height) / rgb.rows);
  const int width = std::clamp(int(std::lround(rgb.cols * scale)), 1, pre.width);
  const int height = std::clamp(int(std::lround(rgb.rows * scale)), 1, pre.height);
  // Padding with the normalisation mean makes the padded area exactly 0 after normalisation.
  const cv::Scalar pad(std::round(pre.mean[0] * 255), std::round(pre.mean[1] * 255),
                       std::round(pre.mean[2] * 255));
  cv::Mat out(pre.height, pre.width, CV_8UC3, pad);
  cv::Mat inner = out(cv::Rect((pre.width - width) / 2, (pre.height - height) / 2, width, height));
  if (width == rgb.cols && height == rgb.rows) {
    rgb.copyTo(inner);
  } else {
    cv::resize(rgb, inner, inner.size(), 0, 0, interpolation(scale, scale));
  }
  return out;
}

void write_normalized_chw(const cv::Mat& resized_rgb, const Preprocessing& pre, float* out) {
  require_rgb8(resized_rgb, "write_normalized_chw");
  if (resized_rgb.cols != pre.width || resized_rgb.rows != pre.height) {
    throw std::invalid_argument("write_normalized_chw: image is not the model's input size");
  }
  const size_t plane = size_t(pre.width) * pre.height;
  std::array<float, 3> scale{};
  std::array<float, 3> offset{};
  for (int c = 0; c < 3; ++c) {  // (p / 255 - mean) / std as one multiply-add
    scale[c] = 1.0f / (255.0f * pre.std[c]);
    offset[c] = -pre.mean[c] / pre.std[c];
  }
  for (int y = 0; y < pre.height; ++y) {
    const uint8_t* row = resized_rgb.ptr<uint8_t>(y);
    const size_t row_start = size_t(y) * pre.width;
    for (int x = 0; x < pre.width; ++x) {
      for (int c = 0; c < 3; ++c) {
        out[c * plane + row_start + x] = row[3 * x + c] * scale[c] + offset[c];
      }
    }
  }
}

nlohmann::json Preprocessing::to_json() const {
  return {{"width", width},
          {"height", height},
          {"resize", name_of(resize)},
          {"shrink", name_of(shrink)},
          {"mean", mean},
          {"std", std}};
}

Preprocessing Preprocessing::from_json(const nlohmann::json& json) {
  const std::string_view context = "preprocessing";
  require_object(json, context);
  Preprocessing pre;
  pre.width = field_or(json, "width", pre.width, context);
  pre.height = field_or(json, "height", pre.height, context);
  if (pre.width < 1 || pre.height < 1 || pre.width > 8192 || pre.height > 8192) {
    fail("{}: input size {}×{} is out of range (1..8192)", context, pre.width, pre.height);
  }
  pre.resize = choice_field(json, "resize", "stretch", kResizeModes, context);
  // Files written before the choice existed were made with area averaging.
  pre.shrink = choice_field(json, "shrink", "area", kShrinkFilters, context);
  for (const char* key : {"mean", "std"}) {
    if (json.contains(key) && !(json.at(key).is_array() && json.at(key).size() == 3)) {
      fail("{}: '{}' must be an array of 3 numbers (R, G, B), got {}", context, key,
           json.at(key).dump());
    }
  }
  pre.mean = field_or(json, "mean", pre.mean, context);
  pre.std = field_or(json, "std", pre.std, context);
  for (float value : pre.std) {
    if (!(value > 0)) fail("{}: std values must be positive, got {}", context, value);
  }
  return pre;
}

Augmentation Augmentation::none() {
  Augmentation aug;
  aug.horizontal_flip = false;
  aug.max_rotation_deg = 0;
  aug.max_shift = 0;
  aug.min_scale = 1;
  aug.max_scale = 1;
  aug.brightness = 0;
  aug.contrast = 0;
  aug.saturation = 0;
  return aug;
}

nlohmann::json Augmentation::to_json() const {
  return {{"horizontal_flip", horizontal_flip},
          {"max_rotation_deg", max_rotation_deg},
          {"max_shift", max_shift},
          {"min_scale", min_scale},
          {"max_scale", max_scale},
          {"brightness", brightness},
          {"contrast", contrast},
          {"saturation", saturation}};
}

Augmentation Augmentation::from_json(const nlohmann::json& json) {
  const std::string_view context = "augmentation";
  require_object(json, context);
  Augmentation aug;
  aug.horizontal_flip = field_or(json, "horizontal_flip", aug.horizontal_flip, context);
  aug.max_rotation_deg = field_or(json, "max_rotation_deg", aug.max_rotation_deg, context);
  aug.max_shift = field_or(json, "max_shift", aug.max_shift, context);
  aug.min_scale = field_or(json, "min_scale", aug.min_scale, context);
  aug.max_scale = field_or(json, "max_scale", aug.max_scale, context);
  aug.brightness = field_or(json, "brightness", aug.brightness, context);
  aug.contrast = field_or(json, "contrast", aug.contrast, context);
  aug.saturation = field_or(json, "saturation", aug.saturation, context);
  if (aug.max_rotation_deg < 0 || aug.max_rotation_deg > 180) {
    fail("{}: max_rotation_deg must be in [0, 180], got {}", context, aug.max_rotation_deg);
  }
  if (aug.max_shift < 0 || aug.max_shift > 0.5) {
    fail("{}: max_shift must be in [0, 0.5], got {}", context, aug.max_shift);
  }
  if (!(aug.min_scale > 0) || aug.max_scale < aug.min_scale) {
    fail("{}: need 0 < min_scale <= max_scale, got {} and {}", context, aug.min_scale,
         aug.max_scale);
  }
  for (const auto& [name, value] : {std::pair{"brightness", aug.brightness},
                                    {"contrast", aug.contrast},
                                    {"saturation", aug.saturation}}) {
    if (value < 0 || value > 1) fail("{}: {} must be in [0, 1], got {}", context, name, value);
  }
  return aug;
}

cv::Mat augment(const cv::Mat& rgb, const Augmentation& aug, std::mt19937& rng) {
  require_rgb8(rgb, "augment");
  // Every random number is drawn in a fixed order whatever the image, so one rng state gives one
  // transform.
  const bool flip = aug.horizontal_flip && uniform(rng, 0, 1) < 0.5;
  const double angle = uniform(rng, -aug.max_rotation_deg, aug.max_rotation_deg);
  const double scale = uniform(rng, aug.min_scale, aug.max_scale);
  const double shift_x = uniform(rng, -aug.max_shift, aug.max_shift) * rgb.cols;
  const double shift_y = uniform(rng, -aug.max_shift, aug.max_shift) * rgb.rows;
  const double brightness = 1 + uniform(rng, -aug.brightness, aug.brightness);
  const double contrast = 1 + uniform(rng, -aug.contrast, aug.contrast);
  const double saturation = 1 + uniform(rng, -aug.saturation, aug.saturation);

  cv::Mat out;
  if (flip) {
    cv::flip(rgb, out, 1);
  } else {
    out = rgb.clone();
  }
  if (angle != 0 || scale != 1 || shift_x != 0 || shift_y != 0) {
    cv::Mat transform =
        cv::getRotationMatrix2D(cv::Point2f(rgb.cols / 2.0f, rgb.rows / 2.0f), angle, scale);
    transform.at<double>(0, 2) += shift_x;
    transform.at<double>(1, 2) += shift_y;
    cv::Mat warped;
    // Replicating the border continues a product photo's plain background.
    cv::warpAffine(out, warped, transform, out.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
    out = warped;
  }
  if (brightness != 1 || contrast != 1 || saturation != 1) {
    cv::Mat pixels;
    out.convertTo(pixels, CV_32FC3, brightness);
    cv::Mat grey;
    cv::cvtColor(pixels, grey, cv::COLOR_RGB2GRAY);
    const double mean_grey = cv::mean(grey)[0];
    pixels = pixels * contrast + cv::Scalar::all(mean_grey * (1 - contrast));
    cv::cvtColor(pixels, grey, cv::COLOR_RGB2GRAY);
    cv::Mat grey_rgb;
    cv::cvtColor(grey, grey_rgb, cv::COLOR_GRAY2RGB);
    cv::addWeighted(pixels, saturation, grey_rgb, 1 - saturation, 0, pixels);
    pixels.convertTo(out, CV_8UC3);
  }
  return out;
}

}  // namespace garmentnet
