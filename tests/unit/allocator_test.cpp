// The process allocator keeps freed large blocks for reuse (garmentnet_core links tcmalloc; see
// CMakeLists.txt). With glibc's malloc every tensor above 32 MiB went back to the kernel when
// freed and was page-faulted in again by the next forward pass, which halved mobilenet_v2's speed
// at 224 px.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstring>
#include <memory>

namespace {

long minor_page_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// Allocates and fills `bytes` (like a batch's activations), frees it, and returns the page
// faults that took.
long page_faults_of_one_large_buffer(size_t bytes) {
  const long before = minor_page_faults();
  auto buffer = std::make_unique<char[]>(bytes);
  std::memset(buffer.get(), 1, bytes);
  const volatile char* read_back = buffer.get();
  EXPECT_EQ(read_back[bytes / 2], 1);
  return minor_page_faults() - before;
}

TEST(Allocator, ReusesAFreedLargeBlockWithoutPageFaultingItInAgain) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "sanitizer builds use the sanitizer's allocator";
#else
  const size_t bytes = size_t{64} << 20;
  const long pages = static_cast<long>(bytes / 4096);
  page_faults_of_one_large_buffer(bytes);  // first touch: the pages come from the kernel
  for (int pass = 0; pass < 3; ++pass) {
    EXPECT_LT(page_faults_of_one_large_buffer(bytes), pages / 10) << "pass " << pass;
  }
#endif
}

}  // namespace
