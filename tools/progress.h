// Progress on stderr for long runs, and Ctrl-C as a clean cancel.
//
// A Progress prints "<label> 37% 12.3 s" at most four times a second when stderr is a
// terminal (rewriting one line), and otherwise one line every 10 s once the run has taken 2 s.
// Its callback returns false after SIGINT, so that the library stops between tiles and throws
// Error(interrupted); a second Ctrl-C ends the process (signals.h).
#pragma once
#include <chrono>
#include <functional>
#include <mutex>
#include <string>

#include "signals.h"

namespace convnd::cli {

class Progress {
 public:
  explicit Progress(std::string label);
  ~Progress();
  /// Reports the fraction done (0..1); returns false when the user interrupted.
  bool update(double fraction);
  /// A callback for ExecOptions::progress.
  std::function<bool(double)> callback();
  /// Clears the progress line (if one was drawn).
  void finish();

 private:
  std::string label_;
  std::chrono::steady_clock::time_point start_, last_;
  bool tty_;
  bool drawn_ = false;
  bool printed_any_ = false;
  std::mutex mu_;  // the library may report from any thread
};

}  // namespace convnd::cli
