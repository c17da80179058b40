#include "core/stop_signals.h"

#include <gtest/gtest.h>

#include <csignal>

namespace garmentnet {
namespace {

// The first Ctrl-C asks long work to stop at its next safe point; the second ends the process at
// once with the shell's status for the signal.
TEST(StopSignalsTest, TheFirstSignalRequestsAStopAndTheSecondExitsAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const StopSignals signals;
        std::raise(SIGINT);
        if (!signals.requested()) std::_Exit(3);
        try {
          stop_if_requested(&signals.requested(), "decoding images");
          std::_Exit(4);
        } catch (const StopRequested& stop) {
          if (std::string(stop.what()) != "decoding images") std::_Exit(5);
        }
        std::raise(SIGINT);
        std::_Exit(6);  // not reached: the second signal exits
      },
      testing::ExitedWithCode(128 + SIGINT), "second stop signal: exiting at once");
  EXPECT_EXIT(
      {
        const StopSignals signals;
        std::raise(SIGTERM);
        std::raise(SIGTERM);
        std::_Exit(6);
      },
      testing::ExitedWithCode(128 + SIGTERM), "second stop signal");
}

TEST(StopSignalsTest, NoFlagOrAnUnsetFlagNeverStops) {
  EXPECT_NO_THROW(stop_if_requested(nullptr, "work"));
  const std::atomic<bool> unset{false};
  EXPECT_NO_THROW(stop_if_requested(&unset, "work"));
}

}  // namespace
}  // namespace garmentnet
