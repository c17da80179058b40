#include "data/augmentation_presets.h"

#include <fmt/ranges.h>

#include "core/error.h"

namespace garmentnet {

const std::vector<std::string>& augmentation_preset_names() {
  static const std::vector<std::string> names{"standard", "light", "none"};
  return names;
}

Augmentation augmentation_preset(std::string_view name) {
  if (name == "standard") return Augmentation{};
  if (name == "none") return Augmentation::none();
  if (name == "light") {
    Augmentation light = Augmentation::none();
    light.horizontal_flip = true;
    light.max_shift = Augmentation{}.max_shift;
    return light;
  }
  fail("augmentation preset '{}' is unknown: use {}", name,
       fmt::join(augmentation_preset_names(), ", "));
}

}  // namespace garmentnet
