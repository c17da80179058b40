// A training run as TensorBoard shows it: every figure of every epoch as a scalar, and at the end
// the best epoch's confusion matrices and validation samples as images, in <run>/tensorboard/
// (so `tensorboard --logdir runs/` lists every run). Written as the run goes.
#pragma once

#include <filesystem>
#include <memory>

#include "train/training_observer.h"

namespace garmentnet {

class TensorBoardWriter;

class TensorBoardObserver : public TrainingObserver {
 public:
  explicit TensorBoardObserver(std::filesystem::path run_dir);
  ~TensorBoardObserver() override;

  void on_run_start(const RunStart& start) override;
  void on_epoch_end(const EpochEnd& end) override;
  void on_run_end(const TrainResult& result) override;

 private:
  std::filesystem::path run_dir_;
  std::unique_ptr<TensorBoardWriter> writer_;
  size_t training_rows_ = 0;
};

}  // namespace garmentnet
