#include "train/tensorboard_observer.h"

#include "core/atomic_file.h"
#include "train/tensorboard_events.h"
#include "train/trainer.h"

namespace garmentnet {
namespace {

// Width, height and channels of a PNG from its IHDR chunk; nullopt for anything else.
struct PngShape {
  int width = 0;
  int height = 0;
  int channels = 0;
};

std::optional<PngShape> png_shape(std::string_view png) {
  if (png.size() < 26 || png.substr(0, 8) != "\x89PNG\r\n\x1a\n" || png.substr(12, 4) != "IHDR")
    return std::nullopt;
  const auto big_endian = [&](size_t at) {
    uint32_t value = 0;
    for (size_t i = 0; i < 4; ++i) value = value << 8 | static_cast<uint8_t>(png[at + i]);
    return static_cast<int>(value);
  };
  const int colour_type = static_cast<uint8_t>(png[25]);
  const int channels = colour_type == 6 ? 4 : colour_type == 2 ? 3 : colour_type == 4 ? 2 : 1;
  return PngShape{.width = big_endian(16), .height = big_endian(20), .channels = channels};
}

}  // namespace

TensorBoardObserver::TensorBoardObserver(std::filesystem::path run_dir)
    : run_dir_(std::move(run_dir)) {}

TensorBoardObserver::~TensorBoardObserver() = default;

void TensorBoardObserver::on_run_start(const RunStart& start) {
  writer_ = std::make_unique<TensorBoardWriter>(run_dir_ / "tensorboard");
  training_rows_ = start.training_rows;
}

void TensorBoardObserver::on_epoch_end(const EpochEnd& end) {
  for (const auto& [name, value] : epoch_figures(end.record, training_rows_))
    writer_->add_scalar(name, value, end.record.epoch);
}

void TensorBoardObserver::on_run_end(const TrainResult& result) {
  // The report's pictures of the best epoch, when a report was written (not with --no-report).
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(run_dir_ / "plots", error)) {
    const std::string name = entry.path().stem().string();
    if (!name.ends_with("_confusion") && name != "validation_samples") continue;
    const std::string png = read_file(entry.path());
    if (const auto shape = png_shape(png)) {
      writer_->add_png_image("best_epoch/" + name, png, shape->width, shape->height,
                             shape->channels, result.best_epoch);
    }
  }
}

}  // namespace garmentnet
