// Errors raised inside garmentnet, by kind. An InputError is the user's to fix: its message names
// the file, row or field at fault and says what to do; `main` prints it and exits 1, the HTTP
// handlers answer 4xx. An InternalError is a bug of ours (a broken invariant): `main` exits 2 and
// asks for a report, the HTTP handlers answer 500, so a bug is never blamed on the user's input.
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

// A broken invariant inside garmentnet: no input of the user's should reach it.
class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw InputError(fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_internal(fmt::format_string<Args...> format, Args&&... args) {
  throw InternalError(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace garmentnet
