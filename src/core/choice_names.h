// A closed set of choices (an enum) with one name each: how the choice is spelled on the command
// line, in config.json and in model files. One table per enum, so parsing, printing and the list
// of choices in error messages never disagree.
#pragma once

#include <fmt/format.h>

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/error.h"

namespace garmentnet {

template <typename Choice, std::size_t N>
struct ChoiceNames {
  std::array<std::pair<std::string_view, Choice>, N> entries;

  std::string_view name_of(Choice choice) const {
    for (const auto& [name, value] : entries) {
      if (value == choice) return name;
    }
    fail_internal("a choice without a name in its table");
  }

  std::optional<Choice> find(std::string_view given) const {
    for (const auto& [name, value] : entries) {
      if (given == name) return value;
    }
    return std::nullopt;
  }

  // The choice called `given`; InputError "`what` 'given' is unknown: use a, b or c" otherwise.
  Choice parse(std::string_view given, std::string_view what) const {
    if (const auto choice = find(given)) return *choice;
    fail("{} '{}' is unknown: use {}", what, given, listed());
  }

  // "a, b or c".
  std::string listed() const {
    std::string out;
    for (std::size_t i = 0; i < N; ++i) {
      if (i > 0) out += i + 1 == N ? " or " : ", ";
      out += entries[i].first;
    }
    return out;
  }
};

template <typename Choice, typename... Entries>
constexpr auto choice_names(Entries... entries) {
  return ChoiceNames<Choice, sizeof...(Entries)>{{{entries...}}};
}

}  // namespace garmentnet
