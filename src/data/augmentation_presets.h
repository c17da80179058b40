// Named strengths of training augmentation (`train --augment`), so a run can state which one it
// used and resume with it.
#pragma once

#include "core/choice_names.h"
#include "data/image.h"

namespace garmentnet {

enum class AugmentationPreset {
  Standard,  // Augmentation's defaults: flip, rotation, shift, zoom, colour
  Light,     // flips and shifts only: small images such as 28 px Fashion-MNIST underfit with more
  None,      // images unchanged
};

// Strongest first.
inline constexpr auto kAugmentationPresets = choice_names<AugmentationPreset>(
    std::pair{"standard", AugmentationPreset::Standard},
    std::pair{"light", AugmentationPreset::Light}, std::pair{"none", AugmentationPreset::None});

// The transforms of a preset.
Augmentation augmentation_of(AugmentationPreset preset);

}  // namespace garmentnet
