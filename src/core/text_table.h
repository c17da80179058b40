// Tables as aligned plain text, for what explore and evaluate print on the terminal.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace garmentnet {

// Rows of cells as a plain-text table: a header, a rule under it, columns padded to their widest
// cell (counted in characters, not bytes), numeric columns right-aligned, each line ending in a
// newline. Short rows are padded with empty cells; a row longer than the header is an error.
std::string format_text_table(const std::vector<std::string>& headers,
                              const std::vector<std::vector<std::string>>& rows);

// Whether a cell reads as a number ("12", "-0.5", "1e-3", "93.1%"), to right-align it.
bool looks_numeric(std::string_view cell);

}  // namespace garmentnet
