// Giving freed memory back to the system. The allocator keeps freed blocks for reuse, which is
// what a busy server wants; after a burst, an idle server should not keep its peak for ever.
#pragma once

namespace garmentnet {

// Returns the allocator's free pages to the system: tcmalloc's ReleaseFreeMemory where tcmalloc
// is linked (every garmentnet binary but the sanitizer builds), glibc's malloc_trim otherwise.
void release_free_memory();

}  // namespace garmentnet
