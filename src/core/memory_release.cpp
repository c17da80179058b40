#include "core/memory_release.h"

#include <malloc.h>

// Declared weak so that the sanitizer builds, which bring their own allocator instead of
// tcmalloc, link without it.
extern "C" void MallocExtension_ReleaseFreeMemory() __attribute__((weak));

namespace garmentnet {

void release_free_memory() {
  if (MallocExtension_ReleaseFreeMemory != nullptr) {
    MallocExtension_ReleaseFreeMemory();
  } else {
    ::malloc_trim(0);
  }
}

}  // namespace garmentnet
