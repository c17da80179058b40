#include "core/html_report.h"

#include <fmt/format.h>

#include <cctype>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/text_table.h"

namespace garmentnet {
namespace {

constexpr std::string_view kStyle = R"(
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 980px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.7em; border-bottom: 2px solid #4e79a7; padding-bottom: .25em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .93em; }
th, td { padding: .3em .8em; border-bottom: 1px solid #e3e3e3; text-align: left; }
th { background: #f3f5f8; border-bottom: 2px solid #ccd; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
table.key-values th { background: none; border-bottom: 1px solid #e3e3e3; font-weight: 600; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #e3e3e3; }
figcaption { color: #666; font-size: .9em; }
pre { background: #f6f8fa; padding: .8em 1em; overflow-x: auto; border-radius: 4px; }
)";

// Characters kept as they are in a URL path; everything else is percent-encoded.
bool url_safe(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~' || c == '/';
}

std::string url_path(const std::filesystem::path& path) {
  std::string encoded;
  for (const char c : path.generic_string()) {
    const auto byte = static_cast<unsigned char>(c);
    encoded += url_safe(byte) ? std::string(1, c) : fmt::format("%{:02X}", byte);
  }
  return encoded;
}

std::string table_cell(std::string_view tag, std::string_view text) {
  const bool number = tag == "td" && looks_numeric(text);
  return fmt::format("<{0}{1}>{2}</{0}>", tag, number ? " class=\"number\"" : "",
                     html_escape(text));
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

HtmlReport::HtmlReport(std::string title) : title_(std::move(title)) {}

HtmlReport& HtmlReport::section(std::string_view heading) {
  body_ += fmt::format("<h2>{}</h2>\n", html_escape(heading));
  return *this;
}

HtmlReport& HtmlReport::subsection(std::string_view heading) {
  body_ += fmt::format("<h3>{}</h3>\n", html_escape(heading));
  return *this;
}

HtmlReport& HtmlReport::paragraph(std::string_view text) {
  body_ += fmt::format("<p>{}</p>\n", html_escape(text));
  return *this;
}

HtmlReport& HtmlReport::preformatted(std::string_view text) {
  body_ += fmt::format("<pre>{}</pre>\n", html_escape(text));
  return *this;
}

HtmlReport& HtmlReport::key_values(const std::vector<std::pair<std::string, std::string>>& rows) {
  body_ += "<table class=\"key-values\">\n";
  for (const auto& [key, value] : rows) {
    body_ += "<tr>" + table_cell("th", key) + table_cell("td", value) + "</tr>\n";
  }
  body_ += "</table>\n";
  return *this;
}

HtmlReport& HtmlReport::table(const std::vector<std::string>& headers,
                              const std::vector<std::vector<std::string>>& rows) {
  body_ += "<table>\n<thead><tr>";
  for (const std::string& header : headers) body_ += table_cell("th", header);
  body_ += "</tr></thead>\n<tbody>\n";
  for (const auto& row : rows) {
    body_ += "<tr>";
    for (const std::string& cell : row) body_ += table_cell("td", cell);
    body_ += "</tr>\n";
  }
  body_ += "</tbody>\n</table>\n";
  return *this;
}

HtmlReport& HtmlReport::image(const std::filesystem::path& relative_path,
                              std::string_view caption) {
  if (relative_path.is_absolute()) {
    fail("report image {} must be given relative to the report's folder", relative_path.string());
  }
  body_ += fmt::format("<figure><img src=\"{}\" alt=\"{}\">", html_escape(url_path(relative_path)),
                       html_escape(caption.empty() ? relative_path.filename().string() : caption));
  if (!caption.empty()) body_ += fmt::format("<figcaption>{}</figcaption>", html_escape(caption));
  body_ += "</figure>\n";
  return *this;
}

std::string HtmlReport::html() const {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>{0}</title>\n<style>{1}</style>\n</head>\n<body>\n<h1>{0}</h1>\n{2}</body>\n"
      "</html>\n",
      html_escape(title_), kStyle, body_);
}

void HtmlReport::write(const std::filesystem::path& file) const {
  write_file_atomically(file, html());
}

}  // namespace garmentnet
