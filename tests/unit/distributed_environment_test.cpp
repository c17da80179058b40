// The launcher environment a data-parallel rank reads (torchrun, PyTorchJob, `train --nproc`):
// what each variable gives, the defaults, and a message naming the variable when one is wrong.
#include "dist/distributed_environment.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "test_support.h"

namespace garmentnet {
namespace {

// Sets the launcher's variables for the life of the object (unset where the value is empty), and
// clears every one of them afterwards.
using Variables = std::map<std::string, std::string>;

class LauncherEnvironment {
 public:
  explicit LauncherEnvironment(const Variables& values) {
    for (const char* name : kNames) ::unsetenv(name);
    for (const auto& [name, value] : values) ::setenv(name.c_str(), value.c_str(), 1);
  }
  LauncherEnvironment(const LauncherEnvironment&) = delete;
  LauncherEnvironment& operator=(const LauncherEnvironment&) = delete;
  ~LauncherEnvironment() {
    for (const char* name : kNames) ::unsetenv(name);
  }

 private:
  static constexpr const char* kNames[] = {"RANK",
                                           "WORLD_SIZE",
                                           "LOCAL_RANK",
                                           "MASTER_ADDR",
                                           "MASTER_PORT",
                                           "GLOO_SOCKET_IFNAME",
                                           "TORCHELASTIC_USE_AGENT_STORE",
                                           "TORCHELASTIC_RESTART_COUNT"};
};

TEST(DistributedEnvironmentTest, WithoutWorldSizeTheProcessTrainsAlone) {
  LauncherEnvironment environment(Variables{{"RANK", "3"}});
  EXPECT_FALSE(distributed_environment().has_value());
}

TEST(DistributedEnvironmentTest, ReadsAPyTorchJobsVariables) {
  LauncherEnvironment environment(Variables{{"WORLD_SIZE", "4"},
                                            {"RANK", "2"},
                                            {"MASTER_ADDR", "garmentnet-train-master-0"},
                                            {"MASTER_PORT", "23456"},
                                            {"GLOO_SOCKET_IFNAME", "eth0"}});
  const auto parsed = distributed_environment();
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->world_size, 4);
  EXPECT_EQ(parsed->rank, 2);
  EXPECT_EQ(parsed->local_rank, 0);  // a PyTorchJob sets no LOCAL_RANK
  EXPECT_EQ(parsed->master_addr, "garmentnet-train-master-0");
  EXPECT_EQ(parsed->master_port, 23456);
  EXPECT_EQ(parsed->interface, "eth0");
  EXPECT_FALSE(parsed->agent_store);  // rank 0 hosts the store
  EXPECT_EQ(parsed->store_prefix, "garmentnet/attempt_0");
}

TEST(DistributedEnvironmentTest, UnderTorchrunEveryRankIsAClientOfTheAgentsStore) {
  LauncherEnvironment environment(Variables{{"WORLD_SIZE", "2"},
                                            {"RANK", "0"},
                                            {"LOCAL_RANK", "0"},
                                            {"MASTER_ADDR", "127.0.0.1"},
                                            {"MASTER_PORT", "29500"},
                                            {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                            {"TORCHELASTIC_RESTART_COUNT", "2"}});
  const auto parsed = distributed_environment();
  ASSERT_TRUE(parsed.has_value());
  EXPECT_TRUE(parsed->agent_store);
  EXPECT_EQ(parsed->store_prefix, "garmentnet/attempt_2");  // a restarted group's own keys
}

TEST(DistributedEnvironmentTest, AWrongOrMissingVariableIsNamed) {
  const Variables good{
      {"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}};
  const auto error_with = [&](const std::string& name, const std::string& value) {
    Variables values = good;
    if (value.empty())
      values.erase(name);
    else
      values[name] = value;
    LauncherEnvironment environment(values);
    return testing::error_of([] { distributed_environment(); });
  };
  EXPECT_NE(error_with("RANK", "2").find("RANK='2' is not an integer in [0, 1]"),
            std::string::npos);
  EXPECT_NE(error_with("WORLD_SIZE", "two").find("WORLD_SIZE='two'"), std::string::npos);
  EXPECT_NE(error_with("MASTER_PORT", "70000").find("MASTER_PORT='70000'"), std::string::npos);
  EXPECT_NE(error_with("MASTER_ADDR", "").find("MASTER_ADDR is not set"), std::string::npos);
  EXPECT_NE(error_with("RANK", "").find("RANK is not set"), std::string::npos);
}

}  // namespace
}  // namespace garmentnet
