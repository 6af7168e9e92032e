// Errors. Internal code returns a Status; the public C++ API throws convnd::Error.
// The three user-facing kinds (invalid, unsupported, out of memory) stay distinct so that the
// CLI can map them to exit codes 2, 3, 4 and Python to ValueError, NotImplementedError,
// MemoryError.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>

namespace convnd {

enum class ErrorKind : int {
  ok = 0,
  invalid = 2,        // the problem or the call breaks a rule of the spec
  unsupported = 3,    // valid, but not implemented on the chosen backend
  out_of_memory = 4,  // more than the memory budget or the device allows
  backend = 5,        // a backend (CUDA driver, ...) failed
  interrupted = 6,    // cancelled by the caller between tiles
};

const char* error_kind_name(ErrorKind k);

class Status {
 public:
  Status() = default;
  Status(ErrorKind kind, std::string message) : kind_(kind), message_(std::move(message)) {}
  static Status Ok() { return {}; }
  bool ok() const { return kind_ == ErrorKind::ok; }
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }

 private:
  ErrorKind kind_ = ErrorKind::ok;
  std::string message_;
};

/// Thrown by the public API. what() is one line naming the operation, the rule, the values
/// and the problem string.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  explicit Error(const Status& s) : Error(s.kind(), s.message()) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

/// Throws Error if !s.ok().
inline void throw_if_error(const Status& s) {
  if (!s.ok()) throw Error(s);
}

}  // namespace convnd
