// A small builder for self-contained HTML reports (explore, train, evaluate): headings,
// paragraphs, tables and images referenced by a path relative to the report. All text is
// HTML-escaped; the style sheet is inline and nothing is loaded from elsewhere.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace garmentnet {

class HtmlReport {
 public:
  explicit HtmlReport(std::string title);

  // A top-level heading; the content added after it belongs to it.
  HtmlReport& section(std::string_view heading);
  // A heading one level below a section.
  HtmlReport& subsection(std::string_view heading);
  HtmlReport& paragraph(std::string_view text);
  // Monospaced text kept as written (commands, logs).
  HtmlReport& preformatted(std::string_view text);
  // Two columns: a name and its value per row.
  HtmlReport& key_values(const std::vector<std::pair<std::string, std::string>>& rows);
  // A table with a header row; cells that look like numbers are right-aligned.
  HtmlReport& table(const std::vector<std::string>& headers,
                    const std::vector<std::vector<std::string>>& rows);
  // An image, with `relative_path` relative to the report's folder (keep them together), and an
  // optional caption under it.
  HtmlReport& image(const std::filesystem::path& relative_path, std::string_view caption = {});

  // The whole document.
  std::string html() const;
  // Writes the document atomically.
  void write(const std::filesystem::path& file) const;

 private:
  std::string title_;
  std::string body_;
};

// `text` with &, <, >, " and ' replaced by character references.
std::string html_escape(std::string_view text);

}  // namespace garmentnet
