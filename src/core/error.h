// Errors raised inside garmentnet. Messages are meant for the user: they name the file, row or
// field at fault and say what to do. `main` and the HTTP handlers turn them into one line / a 4xx.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace garmentnet {

// Bad input from the user (files, flags, requests): the user can fix it.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw InputError(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace garmentnet
