// The web page's files (web/), embedded into the binary at build time by cmake/embed_web.cmake
// so the page works with no install step and no internet.
#pragma once

#include <string_view>

namespace garmentnet {

struct WebAsset {
  std::string_view name;          // file name inside web/, e.g. "app.js"
  std::string_view content_type;  // from the extension
  std::string_view content;       // the bytes
};

// The embedded file called `name`, or nullptr. Only embedded names match: no file system access.
const WebAsset* find_web_asset(std::string_view name);

}  // namespace garmentnet
