// Where `convnd run --output PATH` writes y. open() decides, before the run, from what PATH is:
//
//   a new name, or a regular file        replaced atomically: y goes to a temporary file
//                                        beside it, renamed over it once complete
//   a symbolic link (to a regular file,  the same for the file the link leads to; the link
//     or to a new name)                  stays a link
//   '-', or standard output by any name  written in place to standard output
//     (/dev/stdout, /dev/fd/1)
//   a character device (/dev/null)       written in place
//   a FIFO that has a reader             written in place
//   anything else (a directory, socket,  refused, with the reason
//     block device, FIFO with no reader)
//
// Nothing is ever replaced that is not a regular file. A target written in place is written
// only after the run succeeded; a write that fails or is interrupted there leaves what was
// written so far (a stream cannot be taken back).
#pragma once
#include <convnd/status.h>
#include <convnd/tensor.h>

#include <cstdio>
#include <functional>
#include <string>

namespace convnd::cli {

class OutputFile {
 public:
  enum class Mode { replace, in_place };

  OutputFile() = default;
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  /// Checks the target and prepares it: creates the temporary file (replace) or opens the
  /// target (in place), so that an unwritable path fails before a long run. `watch` (when
  /// given) is told the temporary file's path just before it is created and nullptr once it is
  /// gone or in place (signals.h's watch_temp_file). Errors: ErrorKind::invalid, with a
  /// message that starts "[npy] PATH (output): ".
  Status open(const std::string& path, void (*watch)(const char*) = nullptr);
  Mode mode() const { return mode_; }
  /// The path as given.
  const std::string& path() const { return path_; }
  /// True when the data goes to this process's standard output.
  bool is_stdout() const { return is_stdout_; }

  /// Writes y as .npy: to the temporary file (flushed, synced and closed), or to the target.
  /// keep_going is asked before each 64 MiB piece; false stops with ErrorKind::interrupted.
  Status write(const TensorView& y, const std::function<bool()>& keep_going = {});
  /// Replace mode: renames the temporary file over the target. In place: nothing to do.
  Status publish();
  /// Removes the temporary file (also done by the destructor unless publish() succeeded).
  void abandon();

 private:
  Status fail(const std::string& why, ErrorKind kind = ErrorKind::invalid) const;

  std::string path_;    // as given
  std::string target_;  // the file that ends up holding y (links followed)
  std::string tmp_;     // replace mode: the temporary file
  Mode mode_ = Mode::replace;
  bool is_stdout_ = false;
  std::FILE* f_ = nullptr;
  void (*watch_)(const char*) = nullptr;
};

}  // namespace convnd::cli
