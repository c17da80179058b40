#include "core/text_table.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace garmentnet {
namespace {

// UTF-8 characters in `text`: every byte except continuation bytes (10xxxxxx) starts one.
std::size_t display_width(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

}  // namespace

bool looks_numeric(std::string_view cell) {
  if (!cell.empty() && cell.back() == '%') cell.remove_suffix(1);
  if (!cell.empty() && cell.front() == '+') cell.remove_prefix(1);
  if (cell.empty()) return false;
  double value = 0;
  const auto [end, error] = std::from_chars(cell.data(), cell.data() + cell.size(), value);
  return error == std::errc() && end == cell.data() + cell.size();
}

std::string format_text_table(const std::vector<std::string>& headers,
                              const std::vector<std::vector<std::string>>& rows) {
  const std::size_t columns = headers.size();
  std::vector<std::size_t> widths(columns);
  // A column is right-aligned when all its non-empty cells are numbers and it has at least one.
  std::vector<bool> numeric(columns, false);
  std::vector<bool> has_text(columns, false);
  for (std::size_t c = 0; c < columns; ++c) widths[c] = display_width(headers[c]);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() > columns) {
      throw std::invalid_argument("format_text_table: row " + std::to_string(r) + " has " +
                                  std::to_string(rows[r].size()) + " cells for " +
                                  std::to_string(columns) + " headers");
    }
    for (std::size_t c = 0; c < rows[r].size(); ++c) {
      const std::string& cell = rows[r][c];
      widths[c] = std::max(widths[c], display_width(cell));
      if (cell.empty()) continue;
      if (looks_numeric(cell)) {
        numeric[c] = true;
      } else {
        has_text[c] = true;
      }
    }
  }
  const auto append_line = [&](std::string& out, auto cell_at) {
    std::string line;
    for (std::size_t c = 0; c < columns; ++c) {
      const std::string_view cell = cell_at(c);
      const std::string padding(widths[c] - display_width(cell), ' ');
      if (c > 0) line += "  ";
      line +=
          numeric[c] && !has_text[c] ? padding + std::string(cell) : std::string(cell) + padding;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  };
  std::string out;
  append_line(out, [&](std::size_t c) -> std::string_view { return headers[c]; });
  std::string rule;
  for (std::size_t c = 0; c < columns; ++c) {
    if (c > 0) rule += "  ";
    rule += std::string(widths[c], '-');
  }
  out += rule + '\n';
  for (const auto& row : rows) {
    append_line(out, [&](std::size_t c) -> std::string_view {
      return c < row.size() ? std::string_view(row[c]) : std::string_view();
    });
  }
  return out;
}

}  // namespace garmentnet
