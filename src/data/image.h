// Image decoding, resizing, normalisation and training augmentation (OpenCV, no torch).
// Training, batch prediction and serving all go through these functions, so a model sees the
// same pixels everywhere.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <opencv2/core.hpp>
#include <random>
#include <string>
#include <string_view>

#include "core/choice_names.h"

namespace garmentnet {

struct ImageLimits {
  int64_t max_pixels = 40'000'000;           // refuse larger images before decoding (bombs)
  size_t max_file_bytes = 64 * 1024 * 1024;  // refuse larger files before reading them
};

struct ImageSize {
  int width = 0;
  int height = 0;
};

// Width and height read from the JPEG/PNG/WebP header without decoding the pixels.
// InputError (naming `source`) if the bytes are not one of these formats or the header is bad.
ImageSize probe_image_size(std::string_view bytes, std::string_view source);

// How many pixels decode_image(bytes, source, limits, target_side) produces, from the header alone
// (a JPEG decoded at reduced size counts its reduced size): what decoding it will cost in time and
// memory. The same InputErrors as decode_image for a bad header or an image over `limits`.
int64_t decoded_pixels(std::string_view bytes, std::string_view source, const ImageLimits& limits,
                       int target_side);

// Decodes JPEG/PNG/WebP bytes into an 8-bit RGB image (3 channels), honouring EXIF orientation.
// When `target_side` > 0 and the image is much larger, JPEGs are decoded at reduced size
// (1/2, 1/4, 1/8) as long as the result stays at least `target_side` on its shorter side.
// Every failure (corrupt, truncated, empty, not an image, too many pixels) is an InputError that
// names `source`.
cv::Mat decode_image(std::string_view bytes, std::string_view source,
                     const ImageLimits& limits = {}, int target_side = 0);

// Reads and decodes an image file (see decode_image).
cv::Mat load_image(const std::filesystem::path& path, const ImageLimits& limits = {},
                   int target_side = 0);

enum class ResizeMode {
  Stretch,  // scale to exactly width × height, ignoring the aspect ratio
  Pad,      // keep the aspect ratio, pad with the mean colour to width × height
};

// How an image larger than the model input is shrunk to it (after any reduced JPEG decoding).
enum class ShrinkFilter {
  // Bilinear while the image is less than twice the input size on both axes (reduced JPEG
  // decoding often makes it so, e.g. 224×224 photos decoded at 1/2 scale for a 64 px input, and
  // has already averaged away the finest detail), area averaging beyond, where interpolating
  // would alias. The default of new models.
  Linear,
  // Area averaging at every size: models written before the choice existed.
  Area,
};

// The names of these choices in model files, configs, exports and flags.
inline constexpr auto kResizeModes = choice_names<ResizeMode>(
    std::pair{"stretch", ResizeMode::Stretch}, std::pair{"pad", ResizeMode::Pad});
inline constexpr auto kShrinkFilters = choice_names<ShrinkFilter>(
    std::pair{"linear", ShrinkFilter::Linear}, std::pair{"area", ShrinkFilter::Area});
std::string_view name_of(ResizeMode mode);
std::string_view name_of(ShrinkFilter filter);

// How pixels become a model input. Stored in the model file.
struct Preprocessing {
  int width = 64;                                     // model input width
  int height = 64;                                    // model input height
  ResizeMode resize = ResizeMode::Stretch;            // how to reach width × height
  ShrinkFilter shrink = ShrinkFilter::Linear;         // how to shrink larger images
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};  // per RGB channel, on [0,1] pixels
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};   // per RGB channel

  nlohmann::json to_json() const;
  static Preprocessing from_json(const nlohmann::json& json);
};

// Resizes an RGB uint8 image to the model's input size.
cv::Mat resize_for_model(const cv::Mat& rgb, const Preprocessing& pre);

// Writes the normalised CHW float planes of a resized RGB uint8 image (width × height as in
// `pre`) to `out` (3 × height × width floats).
void write_normalized_chw(const cv::Mat& resized_rgb, const Preprocessing& pre, float* out);

// Random training transforms, all off when every field is zero/false.
struct Augmentation {
  bool horizontal_flip = true;   // flip left-right with probability 0.5
  double max_rotation_deg = 10;  // uniform rotation in [-x, x]
  double max_shift = 0.08;       // translation up to this fraction of the size
  double min_scale = 0.9;        // zoom factor range (crop when > 1)
  double max_scale = 1.1;
  double brightness = 0.15;  // multiply by 1 ± x
  double contrast = 0.15;    // blend with the mean grey by 1 ± x
  double saturation = 0.15;  // blend with the grey image by 1 ± x

  static Augmentation none();
  nlohmann::json to_json() const;
  static Augmentation from_json(const nlohmann::json& json);
};

// Applies `aug` to an RGB uint8 image; deterministic for a given rng state.
cv::Mat augment(const cv::Mat& rgb, const Augmentation& aug, std::mt19937& rng);

}  // namespace garmentnet
