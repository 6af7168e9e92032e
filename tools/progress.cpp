#include "progress.h"

#include <unistd.h>

#include <cstdio>

namespace convnd::cli {

Progress::Progress(std::string label)
    : label_(std::move(label)), start_(std::chrono::steady_clock::now()), last_(start_), tty_(isatty(2) != 0) {}

Progress::~Progress() { finish(); }

bool Progress::update(double fraction) {
  if (interrupted()) return false;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return true;
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double since = std::chrono::duration<double>(now - last_).count();
  const bool due = tty_ ? (since >= 0.25 && elapsed >= 0.5) : (elapsed >= 2.0 && (!printed_any_ || since >= 10.0));
  if (!due) return true;
  last_ = now;
  printed_any_ = true;
  if (fraction < 0) fraction = 0;
  if (fraction > 1) fraction = 1;
  if (tty_) {
    std::fprintf(stderr, "\r%s %3.0f%% %.1f s\x1b[K", label_.c_str(), fraction * 100.0, elapsed);
    drawn_ = true;
  } else {
    std::fprintf(stderr, "%s %.0f%% %.1f s\n", label_.c_str(), fraction * 100.0, elapsed);
  }
  std::fflush(stderr);
  return true;
}

std::function<bool(double)> Progress::callback() {
  return [this](double f) { return update(f); };
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (drawn_) {
    std::fprintf(stderr, "\r\x1b[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace convnd::cli
