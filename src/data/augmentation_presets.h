// Named strengths of training augmentation (`train --augment`), so a run can state which one it
// used and resume with it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "data/image.h"

namespace garmentnet {

// The preset names, strongest first: standard, light, none.
const std::vector<std::string>& augmentation_preset_names();

// The transforms of a preset: "standard" is Augmentation's defaults (flip, rotation, shift, zoom,
// colour); "light" only flips and shifts (no rotation, zoom or colour change: small images such as
// 28 px Fashion-MNIST underfit with more); "none" leaves images unchanged. InputError listing the
// names for any other.
Augmentation augmentation_preset(std::string_view name);

}  // namespace garmentnet
