#include "data/image.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "core/error.h"
#include "data/augmentation_presets.h"
#include "test_support.h"

namespace garmentnet {
namespace {

// An RGB image whose left half is red and right half blue.
cv::Mat red_blue_image(int width, int height) {
  cv::Mat rgb(height, width, CV_8UC3, cv::Scalar(0, 0, 255));
  rgb(cv::Rect(0, 0, width / 2, height)).setTo(cv::Scalar(255, 0, 0));
  return rgb;
}

std::string encode(const cv::Mat& rgb, const std::string& extension,
                   const std::vector<int>& params = {}) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> bytes;
  EXPECT_TRUE(cv::imencode(extension, bgr, bytes, params));
  return {bytes.begin(), bytes.end()};
}

// An APP1 Exif segment (big-endian TIFF) holding only the orientation tag.
std::string exif_orientation_segment(uint16_t orientation) {
  const std::string tiff = std::string("MM\0\x2A\0\0\0\x08", 8) +        // header, first IFD at 8
                           std::string("\0\x01", 2) +                    // one entry
                           std::string("\x01\x12\0\x03\0\0\0\x01", 8) +  // 0x0112, SHORT, count 1
                           std::string{'\0', static_cast<char>(orientation), '\0', '\0'} +
                           std::string(4, '\0');  // no next IFD
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  const size_t length = payload.size() + 2;
  return std::string{'\xFF', '\xE1', static_cast<char>(length >> 8),
                     static_cast<char>(length & 0xFF)} +
         payload;
}

// A PNG signature and IHDR chunk claiming `width` × `height`, with no pixel data.
std::string png_header(uint32_t width, uint32_t height) {
  std::string bytes("\x89PNG\r\n\x1A\n\0\0\0\x0DIHDR", 16);
  for (uint32_t value : {width, height}) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>(value >> shift);
  }
  bytes += std::string("\x08\x02\0\0\0", 5);  // 8-bit RGB
  bytes += std::string(4, '\0');              // CRC (not checked by the probe)
  return bytes;
}

TEST(ImageTest, DecodesJpegAndPngAsRgb) {
  const cv::Mat original = red_blue_image(40, 30);
  for (const std::string extension : {".png", ".jpg", ".webp"}) {
    SCOPED_TRACE(extension);
    const cv::Mat decoded = decode_image(encode(original, extension), "test" + extension);
    ASSERT_EQ(decoded.type(), CV_8UC3);
    ASSERT_EQ(decoded.cols, 40);
    ASSERT_EQ(decoded.rows, 30);
    const auto left = decoded.at<cv::Vec3b>(15, 5);
    const auto right = decoded.at<cv::Vec3b>(15, 35);
    EXPECT_GT(left[0], 200);  // red first: RGB order
    EXPECT_LT(left[2], 60);
    EXPECT_GT(right[2], 200);
    EXPECT_LT(right[0], 60);
  }
  const cv::Mat png = decode_image(encode(original, ".png"), "lossless.png");
  EXPECT_EQ(cv::norm(png, original, cv::NORM_INF), 0);
}

TEST(ImageTest, HonoursExifOrientation) {
  // Stored 40 wide × 20 high, red on the left; orientation 6 means "rotate 90° clockwise to
  // display", which puts the left side at the top.
  const std::string jpeg = encode(red_blue_image(40, 20), ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95});
  const std::string with_exif = jpeg.substr(0, 2) + exif_orientation_segment(6) + jpeg.substr(2);

  const cv::Mat plain = decode_image(jpeg, "plain.jpg");
  EXPECT_EQ(plain.cols, 40);
  EXPECT_EQ(plain.rows, 20);

  const cv::Mat rotated = decode_image(with_exif, "rotated.jpg");
  ASSERT_EQ(rotated.cols, 20);
  ASSERT_EQ(rotated.rows, 40);
  EXPECT_GT(rotated.at<cv::Vec3b>(5, 10)[0], 200);   // top: red
  EXPECT_GT(rotated.at<cv::Vec3b>(35, 10)[2], 200);  // bottom: blue

  // Reduced decoding keeps the orientation.
  const std::string big = encode(red_blue_image(400, 200), ".jpg");
  const std::string big_exif = big.substr(0, 2) + exif_orientation_segment(6) + big.substr(2);
  const cv::Mat reduced = decode_image(big_exif, "big.jpg", {}, 50);
  EXPECT_EQ(reduced.cols, 50);
  EXPECT_EQ(reduced.rows, 100);
  // The probe reports the stored size.
  const ImageSize stored = probe_image_size(with_exif, "rotated.jpg");
  EXPECT_EQ(stored.width, 40);
  EXPECT_EQ(stored.height, 20);
}

TEST(ImageTest, ProbesSizeOfEachFormat) {
  const cv::Mat image = red_blue_image(37, 23);
  for (const auto& [name, bytes] :
       {std::pair{"jpeg", encode(image, ".jpg")},
        {"progressive jpeg", encode(image, ".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1})},
        {"png", encode(image, ".png")},
        {"webp lossy (VP8)", encode(image, ".webp", {cv::IMWRITE_WEBP_QUALITY, 80})},
        {"webp lossless (VP8L)", encode(image, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101})}}) {
    SCOPED_TRACE(name);
    const ImageSize size = probe_image_size(bytes, name);
    EXPECT_EQ(size.width, 37);
    EXPECT_EQ(size.height, 23);
  }
  EXPECT_NE(encode(image, ".webp", {cv::IMWRITE_WEBP_QUALITY, 80}).substr(12, 4),
            encode(image, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101}).substr(12, 4));

  // Extended WebP (VP8X) header, canvas 70000 × 3 (24-bit fields hold size - 1).
  std::string vp8x("RIFF\0\0\0\0WEBPVP8X\x0A\0\0\0\0\0\0\0", 24);
  vp8x += std::string("\x6F\x11\x01\x02\0\0", 6);  // 69999 = 0x01116F, 2
  const ImageSize extended = probe_image_size(vp8x, "extended.webp");
  EXPECT_EQ(extended.width, 70000);
  EXPECT_EQ(extended.height, 3);

  const ImageSize huge = probe_image_size(png_header(100000, 100000), "huge.png");
  EXPECT_EQ(huge.width, 100000);
  EXPECT_EQ(huge.height, 100000);
}

TEST(ImageTest, RefusesBadBytesWithClearErrors) {
  cv::Mat noise(64, 64, CV_8UC3);
  cv::randu(noise, 0, 255);  // noise makes the scan data much longer than the header
  const std::string jpeg = encode(noise, ".jpg");
  const std::string png = encode(red_blue_image(64, 64), ".png");

  EXPECT_NE(
      testing::error_of([] { decode_image("", "empty.jpg"); }).find("empty.jpg: image is empty"),
      std::string::npos);
  EXPECT_NE(testing::error_of([] {
              decode_image("hello, world", "notes.txt");
            }).find("notes.txt: not a JPEG, PNG or WebP image (it starts with bytes 68 65"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              decode_image(jpeg.substr(0, 10), "header.jpg");
            }).find("header.jpg: truncated JPEG"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              decode_image(jpeg.substr(0, jpeg.size() / 2), "half.jpg");
            }).find("half.jpg: truncated JPEG (no end-of-image marker)"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              decode_image(jpeg.substr(0, jpeg.size() - 2), "no-eoi.jpg");
            }).find("no-eoi.jpg: truncated JPEG"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              decode_image(png.substr(0, png.size() / 2), "half.png");
            }).find("half.png: image cannot be decoded"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              decode_image(png.substr(0, 20), "tiny.png");
            }).find("tiny.png: truncated PNG"),
            std::string::npos);
  std::string bad_crc = png;
  bad_crc[30] ^= 0x55;  // inside the IHDR chunk, so its CRC no longer matches
  EXPECT_NE(
      testing::error_of([&] { decode_image(bad_crc, "crc.png"); }).find("crc.png: image cannot be"),
      std::string::npos);
  std::string garbage = png;
  for (size_t i = 40; i < garbage.size(); ++i) garbage[i] = static_cast<char>(i * 7);
  EXPECT_NE(
      testing::error_of([&] { decode_image(garbage, "garbage.png"); }).find("garbage.png: image"),
      std::string::npos);
  // Damaged scan data with the end marker intact: libjpeg decodes what it can (documented), or
  // the decoder gives up; either way an image of the stored size or an InputError.
  std::string damaged = jpeg;
  for (size_t i = jpeg.size() / 2; i < jpeg.size() / 2 + 200; ++i) damaged[i] = '\x5A';
  try {
    const cv::Mat decoded = decode_image(damaged, "damaged.jpg");
    EXPECT_EQ(decoded.size(), cv::Size(64, 64));
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("damaged.jpg"), std::string::npos);
  }
  EXPECT_NE(testing::error_of([] {
              decode_image(std::string("RIFF\0\0\0\0WEBP", 12), "short.webp");
            }).find("short.webp: truncated WebP"),
            std::string::npos);
}

TEST(ImageTest, RefusesDecompressionBombBeforeDecoding) {
  // Decoding would need 30 GB; only the header exists, so any attempt to decode would fail with
  // a different message than the limit check.
  const std::string message =
      testing::error_of([] { decode_image(png_header(100000, 100000), "bomb.png"); });
  EXPECT_NE(message.find("bomb.png: image is 100000×100000 = 10000000000 pixels, more than the "
                         "limit of 40000000 pixels"),
            std::string::npos)
      << message;
}

TEST(ImageTest, AppliesPixelAndFileLimits) {
  const std::string png = encode(red_blue_image(100, 100), ".png");
  ImageLimits limits;
  limits.max_pixels = 9999;
  EXPECT_NE(
      testing::error_of([&] { decode_image(png, "a.png", limits); }).find("more than the limit"),
      std::string::npos);
  limits.max_pixels = 10000;
  EXPECT_EQ(decode_image(png, "a.png", limits).cols, 100);
  limits.max_file_bytes = png.size() - 1;
  EXPECT_NE(
      testing::error_of([&] { decode_image(png, "a.png", limits); }).find("bytes, more than the"),
      std::string::npos);

  testing::TempDir dir;
  std::ofstream(dir / "a.png", std::ios::binary) << png;
  EXPECT_NE(testing::error_of([&] { load_image(dir / "a.png", limits); }).find("a.png is"),
            std::string::npos);
  EXPECT_EQ(load_image(dir / "a.png").rows, 100);
  EXPECT_NE(testing::error_of([&] {
              load_image(dir / "missing.jpeg");
            }).find("missing.jpeg does not exist"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] { load_image(dir.path()); }).find("is not a regular file"),
            std::string::npos);
}

TEST(ImageTest, DecodesLargeJpegsAtReducedSize) {
  const std::string jpeg = encode(red_blue_image(800, 400), ".jpg");
  EXPECT_EQ(decode_image(jpeg, "a.jpg").cols, 800);
  EXPECT_EQ(decode_image(jpeg, "a.jpg", {}, 400).cols, 800);  // not much larger: full size
  EXPECT_EQ(decode_image(jpeg, "a.jpg", {}, 200).cols, 400);  // 1/2
  const cv::Mat quarter = decode_image(jpeg, "a.jpg", {}, 100);
  EXPECT_EQ(quarter.cols, 200);
  EXPECT_EQ(quarter.rows, 100);
  EXPECT_EQ(decode_image(jpeg, "a.jpg", {}, 10).cols, 100);  // at most 1/8
  // PNGs have no reduced decoding.
  EXPECT_EQ(decode_image(encode(red_blue_image(800, 400), ".png"), "a.png", {}, 10).cols, 800);
}

TEST(ImageTest, ResizeStretchesOrPadsWithMeanColour) {
  const cv::Mat image(50, 100, CV_8UC3, cv::Scalar(10, 200, 30));
  Preprocessing pre;
  pre.width = 64;
  pre.height = 32;
  const cv::Mat stretched = resize_for_model(image, pre);
  EXPECT_EQ(stretched.cols, 64);
  EXPECT_EQ(stretched.rows, 32);
  EXPECT_EQ(stretched.at<cv::Vec3b>(0, 0), cv::Vec3b(10, 200, 30));

  pre.width = 64;
  pre.height = 64;
  pre.resize = ResizeMode::Pad;
  const cv::Mat padded = resize_for_model(image, pre);
  ASSERT_EQ(padded.cols, 64);
  ASSERT_EQ(padded.rows, 64);
  const cv::Vec3b mean_colour(124, 116, 104);            // round(255 × (0.485, 0.456, 0.406))
  EXPECT_EQ(padded.at<cv::Vec3b>(0, 32), mean_colour);   // top band
  EXPECT_EQ(padded.at<cv::Vec3b>(63, 32), mean_colour);  // bottom band
  EXPECT_EQ(padded.at<cv::Vec3b>(32, 0), cv::Vec3b(10, 200, 30));   // image spans the width
  EXPECT_EQ(padded.at<cv::Vec3b>(16, 32), cv::Vec3b(10, 200, 30));  // 64×32 image, rows 16..47
  EXPECT_EQ(padded.at<cv::Vec3b>(15, 32), mean_colour);
  EXPECT_EQ(padded.at<cv::Vec3b>(48, 32), mean_colour);

  std::vector<float> chw(3 * 64 * 64);
  write_normalized_chw(padded, pre, chw.data());
  EXPECT_NEAR(chw[0], (124 / 255.0 - 0.485) / 0.229, 1e-5);  // padding normalises to ~0
  EXPECT_NEAR(chw[0], 0, 0.01);
}

// Columns alternating black and white: the finest detail an image can have.
cv::Mat one_pixel_stripes(int side) {
  cv::Mat image(side, side, CV_8UC3, cv::Scalar::all(0));
  for (int x = 0; x < side; x += 2) image.col(x).setTo(cv::Scalar::all(255));
  return image;
}

TEST(ImageTest, LinearShrinkInterpolatesBelowTwiceTheInputSizeAndAveragesBeyond) {
  Preprocessing linear;
  linear.width = linear.height = 64;
  Preprocessing area = linear;
  area.shrink = ShrinkFilter::Area;
  const cv::Mat near_size = one_pixel_stripes(100);
  cv::Mat expected;
  cv::resize(near_size, expected, cv::Size(64, 64), 0, 0, cv::INTER_LINEAR);
  EXPECT_EQ(cv::norm(resize_for_model(near_size, linear), expected, cv::NORM_INF), 0);
  cv::resize(near_size, expected, cv::Size(64, 64), 0, 0, cv::INTER_AREA);
  EXPECT_EQ(cv::norm(resize_for_model(near_size, area), expected, cv::NORM_INF), 0);

  // Four times larger: interpolating would alias the stripes into stripes; averaging gives grey.
  for (const Preprocessing& pre : {linear, area}) {
    double low = 0;
    double high = 0;
    cv::minMaxLoc(resize_for_model(one_pixel_stripes(256), pre).reshape(1), &low, &high);
    EXPECT_NEAR(low, 127.5, 1);
    EXPECT_NEAR(high, 127.5, 1);
  }
}

TEST(ImageTest, NormalisesToChwPlanes) {
  cv::Mat image(2, 3, CV_8UC3, cv::Scalar(0, 0, 0));
  image.at<cv::Vec3b>(1, 2) = cv::Vec3b(255, 0, 128);
  Preprocessing pre;
  pre.width = 3;
  pre.height = 2;
  std::vector<float> chw(3 * 2 * 3);
  write_normalized_chw(image, pre, chw.data());
  const size_t pixel = 1 * 3 + 2;  // row 1, column 2
  EXPECT_NEAR(chw[0 * 6 + pixel], (1.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(chw[1 * 6 + pixel], (0.0 - 0.456) / 0.224, 1e-5);
  EXPECT_NEAR(chw[2 * 6 + pixel], (128 / 255.0 - 0.406) / 0.225, 1e-5);
  EXPECT_NEAR(chw[0], -0.485 / 0.229, 1e-5);
  EXPECT_THROW(write_normalized_chw(image, Preprocessing{}, chw.data()), std::invalid_argument);
}

TEST(ImageTest, AugmentationIsDeterministicPerSeed) {
  cv::Mat image(48, 48, CV_8UC3);
  cv::randu(image, 0, 255);
  cv::rectangle(image, cv::Rect(5, 5, 20, 30), cv::Scalar(250, 20, 20), cv::FILLED);
  const Augmentation aug;  // defaults: everything on

  std::mt19937 first(7);
  std::mt19937 second(7);
  std::mt19937 other(8);
  const cv::Mat a = augment(image, aug, first);
  const cv::Mat b = augment(image, aug, second);
  const cv::Mat c = augment(image, aug, other);
  EXPECT_EQ(a.size(), image.size());
  EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0);
  EXPECT_GT(cv::norm(a, c, cv::NORM_L1), 0);
  EXPECT_GT(cv::norm(a, image, cv::NORM_L1), 0);
  // The next draw from the same generator differs from the first.
  EXPECT_GT(cv::norm(augment(image, aug, first), a, cv::NORM_L1), 0);

  std::mt19937 rng(7);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(cv::norm(augment(image, Augmentation::none(), rng), image, cv::NORM_INF), 0);
  }

  // Only the flip: either the image or its mirror.
  Augmentation flip_only = Augmentation::none();
  flip_only.horizontal_flip = true;
  cv::Mat mirrored;
  cv::flip(image, mirrored, 1);
  int flips = 0;
  for (int i = 0; i < 20; ++i) {
    const cv::Mat out = augment(image, flip_only, rng);
    const bool same = cv::norm(out, image, cv::NORM_INF) == 0;
    const bool flipped = cv::norm(out, mirrored, cv::NORM_INF) == 0;
    EXPECT_TRUE(same || flipped);
    flips += flipped;
  }
  EXPECT_GT(flips, 0);
  EXPECT_LT(flips, 20);
}

// Whether `out` could come from `band` (a coloured vertical band on black, see below) by a
// flip and a shift alone: every row is the same (no rotation) and each channel's row sum is the
// band's (no zoom, no brightness, contrast or saturation change; a shift with bilinear
// interpolation only spreads the band over neighbouring columns).
bool only_flipped_or_shifted(const cv::Mat& out, const cv::Mat& band) {
  for (int y = 1; y < out.rows; ++y) {
    if (cv::norm(out.row(y), out.row(0), cv::NORM_INF) != 0) return false;
  }
  const cv::Scalar expected = cv::sum(band.row(0));
  const cv::Scalar actual = cv::sum(out.row(0));
  for (int c = 0; c < 3; ++c) {
    if (std::abs(actual[c] - expected[c]) > 4) return false;  // rounding at the two edges
  }
  return true;
}

TEST(ImageTest, AugmentationPresets) {
  // A 64-px image, black but for a coloured band 8 columns wide in the middle: shifts of up to
  // 8% (5 px) keep the band inside.
  cv::Mat band(64, 64, CV_8UC3, cv::Scalar::all(0));
  band.colRange(28, 36).setTo(cv::Scalar(200, 100, 50));

  const Augmentation light = augmentation_of(AugmentationPreset::Light);
  EXPECT_TRUE(light.horizontal_flip);
  EXPECT_GT(light.max_shift, 0);
  std::mt19937 rng(3);
  int moved = 0;
  for (int i = 0; i < 50; ++i) {
    const cv::Mat out = augment(band, light, rng);
    EXPECT_TRUE(only_flipped_or_shifted(out, band)) << "draw " << i;
    moved += cv::norm(out, band, cv::NORM_INF) != 0;
  }
  EXPECT_GT(moved, 40);  // it does shift

  // The check above catches what the standard preset does on top of that.
  int standard_changes = 0;
  for (int i = 0; i < 10; ++i)
    standard_changes += !only_flipped_or_shifted(
        augment(band, augmentation_of(AugmentationPreset::Standard), rng), band);
  EXPECT_EQ(standard_changes, 10);
  EXPECT_EQ(augmentation_of(AugmentationPreset::Standard).to_json(), Augmentation{}.to_json());
  EXPECT_EQ(augmentation_of(AugmentationPreset::None).to_json(), Augmentation::none().to_json());

  EXPECT_EQ(testing::error_of([] { kAugmentationPresets.parse("heavy", "augmentation preset"); }),
            "augmentation preset 'heavy' is unknown: use standard, light or none");
}

TEST(ImageTest, PreprocessingAndAugmentationJsonRoundTrip) {
  Preprocessing pre;
  pre.width = 96;
  pre.height = 80;
  pre.resize = ResizeMode::Pad;
  pre.shrink = ShrinkFilter::Area;
  pre.mean = {0.5f, 0.25f, 0.125f};
  pre.std = {0.1f, 0.2f, 0.3f};
  const Preprocessing pre_back = Preprocessing::from_json(pre.to_json());
  EXPECT_EQ(pre_back.width, 96);
  EXPECT_EQ(pre_back.height, 80);
  EXPECT_EQ(pre_back.resize, ResizeMode::Pad);
  EXPECT_EQ(pre_back.shrink, ShrinkFilter::Area);
  EXPECT_EQ(Preprocessing::from_json(Preprocessing{}.to_json()).shrink, ShrinkFilter::Linear);
  // Model files written before the choice existed keep the area averaging they were trained with.
  EXPECT_EQ(Preprocessing::from_json({{"width", 64}}).shrink, ShrinkFilter::Area);
  EXPECT_EQ(pre_back.mean, pre.mean);
  EXPECT_EQ(pre_back.std, pre.std);
  EXPECT_EQ(pre_back.to_json(), pre.to_json());
  EXPECT_EQ(pre.to_json()["resize"], "pad");

  Augmentation aug;
  aug.horizontal_flip = false;
  aug.max_rotation_deg = 25;
  aug.max_shift = 0.2;
  aug.min_scale = 0.8;
  aug.max_scale = 1.3;
  aug.brightness = 0.3;
  aug.contrast = 0.05;
  aug.saturation = 0.4;
  const Augmentation aug_back = Augmentation::from_json(aug.to_json());
  EXPECT_EQ(aug_back.to_json(), aug.to_json());
  EXPECT_EQ(aug_back.max_scale, 1.3);
  EXPECT_FALSE(aug_back.horizontal_flip);
  EXPECT_EQ(Augmentation::from_json(Augmentation::none().to_json()).to_json(),
            Augmentation::none().to_json());

  EXPECT_NE(testing::error_of([] {
              Preprocessing::from_json({{"resize", "crop"}});
            }).find("resize must be stretch or pad, not 'crop'"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              Preprocessing::from_json({{"shrink", "cubic"}});
            }).find("shrink must be linear or area, not 'cubic'"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              Preprocessing::from_json({{"width", "wide"}});
            }).find("field 'width' has the wrong type"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              Preprocessing::from_json({{"mean", {0.5, 0.5}}});
            }).find("'mean' must be an array of 3 numbers"),
            std::string::npos);
  EXPECT_NE(testing::error_of([] {
              Augmentation::from_json({{"min_scale", 2}, {"max_scale", 1}});
            }).find("need 0 < min_scale <= max_scale"),
            std::string::npos);
}

}  // namespace
}  // namespace garmentnet
