#include "data/augmentation_presets.h"

namespace garmentnet {

Augmentation augmentation_of(AugmentationPreset preset) {
  switch (preset) {
    case AugmentationPreset::Standard:
      return Augmentation{};
    case AugmentationPreset::None:
      return Augmentation::none();
    case AugmentationPreset::Light: {
      Augmentation light = Augmentation::none();
      light.horizontal_flip = true;
      light.max_shift = Augmentation{}.max_shift;
      return light;
    }
  }
  fail_internal("augmentation preset {} has no transforms", static_cast<int>(preset));
}

}  // namespace garmentnet
