#include "signals.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>

namespace convnd::cli {

namespace {

// The handlers run on any thread (the library's workers included) and use only lock-free
// atomics, unlink(), signal() and raise(), all async-signal-safe.
enum State : int { kNoFile = 0, kFile = 1, kCommitting = 2 };

std::atomic<bool> g_interrupted{false};
std::atomic<int> g_state{kNoFile};
std::atomic<int> g_held{0};  // a signal that arrived while committing
char g_temp[4096];

constexpr int kEndingSignals[] = {SIGTERM, SIGHUP,  SIGQUIT, SIGPIPE, SIGALRM,
                                  SIGUSR1, SIGUSR2, SIGXCPU, SIGXFSZ};

void die_by(int sig) {
  std::signal(sig, SIG_DFL);
  std::raise(sig);  // blocked while its handler runs: delivered, with the default action, on return
}

extern "C" void on_ending_signal(int sig) {
  int expected = kFile;
  if (g_state.compare_exchange_strong(expected, kNoFile)) {
    ::unlink(g_temp);
  } else if (expected == kCommitting) {
    int none = 0;
    g_held.compare_exchange_strong(none, sig);
    return;
  }
  die_by(sig);
}

extern "C" void on_sigint(int sig) {
  if (!g_interrupted.exchange(true)) return;  // the first Ctrl-C: stop between tiles
  on_ending_signal(sig);                      // the second: now
}

void install(int sig, void (*handler)(int), bool keep_ignored) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  struct sigaction old;
  if (keep_ignored && sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN)
    return;  // ignored by whoever started us (nohup; SIGPIPE: writes fail with EPIPE): keep it so
  sigaction(sig, &sa, nullptr);
}

}  // namespace

void install_signal_handlers() {
  // SIGINT always: a script's background job starts with it ignored, and `kill -INT` must
  // still stop it cleanly.
  install(SIGINT, on_sigint, false);
  for (int sig : kEndingSignals) install(sig, on_ending_signal, true);
}

bool interrupted() { return g_interrupted.load(); }

void watch_temp_file(const char* path) {
  g_state.store(kNoFile);
  if (!path || std::strlen(path) >= sizeof g_temp) return;
  std::strcpy(g_temp, path);
  g_state.store(kFile);
}

bool begin_commit() {
  int expected = kFile;
  if (!g_state.compare_exchange_strong(expected, kCommitting)) {
    if (expected != kNoFile) return false;
    g_state.store(kCommitting);  // not watched (a very long path): still hold signals back
  }
  if (interrupted()) {
    g_state.store(kFile);
    return false;
  }
  return true;
}

void end_commit() {
  g_state.store(kNoFile);
  if (const int sig = g_held.exchange(0)) die_by(sig);
}

}  // namespace convnd::cli
