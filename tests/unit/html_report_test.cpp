#include "core/html_report.h"

#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/text_table.h"
#include "test_support.h"

namespace garmentnet {
namespace {

TEST(HtmlReport, EscapesEveryTextItGets) {
  EXPECT_EQ(html_escape("<b>\"Tom\" & 'Jerry'</b>"),
            "&lt;b&gt;&quot;Tom&quot; &amp; &#39;Jerry&#39;&lt;/b&gt;");
  HtmlReport report("Report <1>");
  report.section("a & b")
      .paragraph("<script>alert(1)</script>")
      .key_values({{"model", "<m>"}})
      .table({"class", "f1"}, {{"A&B", "0.5"}})
      .image("plots/confusion matrix.png", "caption \"quoted\"");
  const std::string html = report.html();
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("<title>Report &lt;1&gt;</title>"), std::string::npos);
  EXPECT_NE(html.find("<h2>a &amp; b</h2>"), std::string::npos);
  EXPECT_NE(html.find("<td>A&amp;B</td><td class=\"number\">0.5</td>"), std::string::npos);
  EXPECT_NE(html.find("src=\"plots/confusion%20matrix.png\""), std::string::npos);
  EXPECT_NE(html.find("<figcaption>caption &quot;quoted&quot;</figcaption>"), std::string::npos);
}

TEST(HtmlReport, IsSelfContained) {
  const std::string html = HtmlReport("r").paragraph("p").html();
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<style>"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos);  // no external resource of any kind
  EXPECT_EQ(html.find("<link"), std::string::npos);
}

TEST(HtmlReport, WritesTheFileAndRefusesAbsoluteImagePaths) {
  testing::TempDir dir;
  HtmlReport report("r");
  EXPECT_THROW(report.image("/etc/passwd"), InputError);
  report.write(dir / "report.html");
  EXPECT_EQ(read_file(dir / "report.html"), report.html());
}

TEST(TextTable, AlignsTextLeftAndNumbersRight) {
  const std::string table = format_text_table(
      {"class", "support", "f1"},
      {{"BLOUSES", "12", "0.5"}, {"CASUAL_DRESSES", "1034", "0.75"}, {"ÉTÉ", "7"}});
  const std::string expected =
      "class           support    f1\n"
      "--------------  -------  ----\n"
      "BLOUSES              12   0.5\n"
      "CASUAL_DRESSES     1034  0.75\n"
      "ÉTÉ                   7\n";
  EXPECT_EQ(table, expected);
}

TEST(TextTable, RecognisesNumbers) {
  EXPECT_TRUE(looks_numeric("12"));
  EXPECT_TRUE(looks_numeric("-0.5"));
  EXPECT_TRUE(looks_numeric("1e-3"));
  EXPECT_TRUE(looks_numeric("93.1%"));
  EXPECT_FALSE(looks_numeric(""));
  EXPECT_FALSE(looks_numeric("12 px"));
  EXPECT_FALSE(looks_numeric("polka dot"));
  EXPECT_THROW(format_text_table({"a"}, {{"1", "2"}}), std::invalid_argument);
}

}  // namespace
}  // namespace garmentnet
