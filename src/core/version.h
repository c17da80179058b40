// garmentnet's release version, recorded in the files it writes.
#pragma once

#include <string_view>

namespace garmentnet {

inline constexpr std::string_view kGarmentnetVersion = "0.1.0";

}  // namespace garmentnet
