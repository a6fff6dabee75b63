#include <gtest/gtest.h>

#include <regex>
#include <thread>

#include "dataproxy/clock.h"

namespace dataproxy {
namespace {

TEST(Clock, SecondsSinceCountsElapsedTime) {
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double s = seconds_since(start);
  EXPECT_GE(s, 0.019);
  EXPECT_LT(s, 60.0);
}

TEST(Clock, UtcNowIsIso8601) {
  const std::string now = utc_now();
  EXPECT_TRUE(std::regex_match(now, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << now;
  EXPECT_GE(now.substr(0, 4), "2024");
}

}  // namespace
}  // namespace dataproxy
