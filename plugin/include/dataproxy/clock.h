// Time helpers shared by every stage: elapsed seconds and UTC timestamps.
#pragma once

#include <chrono>
#include <string>

namespace dataproxy {

/// Seconds elapsed since `start` on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point start);

/// Current time as ISO 8601 UTC, e.g. "2026-11-27T20:26:25Z".
std::string utc_now();

}  // namespace dataproxy
