#include <gtest/gtest.h>

#include <sstream>

#include "dataproxy/error.h"
#include "dataproxy/progress.h"

namespace dataproxy {
namespace {

std::vector<nlohmann::json> parse_lines(const std::string& text) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST(Progress, ParsesModes) {
  EXPECT_EQ(parse_report_mode("auto"), ReportMode::automatic);
  EXPECT_EQ(parse_report_mode("bar"), ReportMode::bar);
  EXPECT_EQ(parse_report_mode("jsonl"), ReportMode::jsonl);
  EXPECT_EQ(parse_report_mode("quiet"), ReportMode::quiet);
  EXPECT_THROW(parse_report_mode("json"), InvalidInput);
}

TEST(Progress, JsonLinesAreOneObjectPerLine) {
  std::ostringstream out;
  auto reporter = make_reporter(ReportMode::jsonl, &out);
  reporter->event({{"event", "epoch"}, {"epoch", 1}, {"test_accuracy", 0.5}});
  reporter->progress("epoch 1/2", 3, 10, {{"loss", 1.5}});
  // Throttled: a second progress call within a second is dropped.
  reporter->progress("epoch 1/2", 4, 10);
  reporter->message("a line with \"quotes\"\nand a newline");
  auto lines = parse_lines(out.str());
  ASSERT_EQ(lines.size(), 3u) << out.str();
  EXPECT_EQ(lines[0]["event"], "epoch");
  EXPECT_EQ(lines[0]["test_accuracy"], 0.5);
  EXPECT_EQ(lines[1]["event"], "progress");
  EXPECT_EQ(lines[1]["what"], "epoch 1/2");
  EXPECT_EQ(lines[1]["done"], 3);
  EXPECT_EQ(lines[1]["total"], 10);
  EXPECT_EQ(lines[1]["loss"], 1.5);
  EXPECT_EQ(lines[2]["event"], "message");
  EXPECT_EQ(lines[2]["text"], "a line with \"quotes\"\nand a newline");
  EXPECT_THROW(reporter->event({{"epoch", 1}}), InvalidInput);
}

TEST(Progress, BarRedrawsOneLineAndPrintsEvents) {
  std::ostringstream out;
  auto reporter = make_reporter(ReportMode::bar, &out);
  reporter->progress(
      "epoch 2/5", 10, 10,
      {{"unit", "batch"}, {"loss", 0.25}, {"images_per_second", 812.0}, {"eta_seconds", 75.0}});
  reporter->event({{"event", "epoch"},
                   {"epoch", 2},
                   {"epochs", 5},
                   {"train_loss", 0.25},
                   {"train_accuracy", 0.9},
                   {"test_accuracy", 0.8},
                   {"seconds", 3.0},
                   {"images_per_second", 812.0}});
  std::string text = out.str();
  EXPECT_EQ(text.rfind("\r\033[K", 0), 0u) << text;
  EXPECT_NE(text.find("epoch 2/5  batch 10/10 [========================]"), std::string::npos)
      << text;
  EXPECT_NE(text.find("loss 0.25"), std::string::npos) << text;
  EXPECT_NE(text.find("812 img/s"), std::string::npos) << text;
  EXPECT_NE(text.find("ETA 1:15"), std::string::npos) << text;
  EXPECT_NE(text.find("test 80.00%"), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\n');
}

TEST(Progress, QuietAndNullDropEverything) {
  std::ostringstream out;
  auto reporter = make_reporter(ReportMode::quiet, &out);
  reporter->event({{"event", "epoch"}});
  reporter->message("x");
  null_reporter().message("x");
  EXPECT_TRUE(out.str().empty());
}

}  // namespace
}  // namespace dataproxy
