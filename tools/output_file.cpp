#include "output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <random>

#include "npy.h"

namespace convnd::cli {

namespace {

constexpr int kMaxLinks = 40;  // as the kernel's ELOOP limit

std::string errno_text() { return std::strerror(errno); }

// The path a chain of symbolic links leads to (the last one may name a file that does not
// exist yet). Directory components are left as they are: the file is replaced within them.
bool follow_links(std::string path, std::string* target, std::string* why) {
  for (int hops = 0;; ++hops) {
    struct stat l;
    if (::lstat(path.c_str(), &l) != 0) {
      if (errno == ENOENT) break;  // a new file; its directory is checked when the file is made
      *why = "cannot stat " + path + ": " + errno_text();
      return false;
    }
    if (!S_ISLNK(l.st_mode)) break;
    if (hops == kMaxLinks) {
      *why = "has too many levels of symbolic links";
      return false;
    }
    char buf[PATH_MAX];
    const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
    if (n < 0 || size_t(n) >= sizeof buf) {
      *why = "cannot read the symbolic link " + path + (n < 0 ? ": " + errno_text() : "");
      return false;
    }
    const std::string link(buf, size_t(n));
    const size_t slash = path.rfind('/');
    path = link[0] == '/' || slash == std::string::npos ? link : path.substr(0, slash + 1) + link;
  }
  *target = path;
  return true;
}

std::string random_suffix() {
  static std::mt19937_64 gen{std::random_device{}() ^ (uint64_t(::getpid()) << 32)};
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s;
  for (int i = 0; i < 6; ++i) s += kChars[gen() % (sizeof kChars - 1)];
  return s;
}

}  // namespace

OutputFile::~OutputFile() { abandon(); }

Status OutputFile::fail(const std::string& why, ErrorKind kind) const {
  return Status(kind, "[npy] " + path_ + " (output): " + why);
}

void OutputFile::abandon() {
  if (f_ && f_ != stdout) std::fclose(f_);
  f_ = nullptr;
  if (!tmp_.empty()) {
    ::unlink(tmp_.c_str());
    tmp_.clear();
    if (watch_) watch_(nullptr);
  }
}

Status OutputFile::open(const std::string& path, void (*watch)(const char*)) {
  abandon();
  path_ = target_ = path;
  watch_ = watch;
  mode_ = Mode::replace;
  is_stdout_ = false;
  if (path.empty()) return fail("empty path");

  // Standard output, by '-' or by any name of the file it is (/dev/stdout, /dev/fd/1, ...).
  struct stat st, out;
  if (path == "-" || (::stat(path.c_str(), &st) == 0 && ::fstat(1, &out) == 0 && st.st_dev == out.st_dev &&
                      st.st_ino == out.st_ino)) {
    mode_ = Mode::in_place;
    is_stdout_ = true;
    f_ = stdout;
    return Status::Ok();
  }

  std::string why;
  if (!follow_links(path, &target_, &why)) return fail(why);
  const std::string is = target_ == path ? "is " : "is a symbolic link to " + target_ + ", which is ";
  const bool exists = ::stat(target_.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return fail("cannot stat " + target_ + ": " + errno_text());

  if (exists && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
    // Written in place. O_NONBLOCK: a FIFO nobody reads fails at once instead of waiting.
    const int fd = ::open(target_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      if (errno == ENXIO && S_ISFIFO(st.st_mode))
        return fail(is + "a FIFO (named pipe) that nobody reads; start its reader first");
      return fail("cannot open: " + errno_text());
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    f_ = ::fdopen(fd, "wb");
    if (!f_) {
      ::close(fd);
      return fail("cannot open: " + errno_text());
    }
    mode_ = Mode::in_place;
    return Status::Ok();
  }
  if (exists && !S_ISREG(st.st_mode))
    return fail(is + npy::file_type(st.st_mode) +
                "; y is written to a regular file (replaced atomically), standard output, a character device "
                "or a FIFO");
  // Replacing a file we may not write would surprise as much as writing through a device.
  if (exists && ::access(target_.c_str(), W_OK) != 0)
    return fail("cannot write " + target_ + ": " + errno_text());

  // The temporary file, beside the target so that the rename stays within one file system.
  // Its name is made known to the signal handlers before it exists, so no moment is left
  // where a signal could leave it behind.
  const mode_t perm = exists ? (st.st_mode & 07777) : 0666;
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp_ = target_ + ".tmp-" + random_suffix();
    if (watch_) watch_(tmp_.c_str());
    const int fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, perm);
    if (fd < 0) {
      const int e = errno;
      tmp_.clear();
      if (watch_) watch_(nullptr);
      if (e == EEXIST) continue;
      errno = e;
      return fail("cannot create a file in its directory: " + errno_text());
    }
    if (exists) ::fchmod(fd, perm);  // the target's permissions, not the umask's
    f_ = ::fdopen(fd, "wb");
    if (!f_) {
      ::close(fd);
      const Status s = fail("cannot open the temporary file: " + errno_text());
      abandon();
      return s;
    }
    return Status::Ok();
  }
  return fail("cannot create a temporary file beside " + target_);
}

Status OutputFile::write(const TensorView& y, const std::function<bool()>& keep_going) {
  if (!f_) return fail("not open");
  Status s = npy::write(f_, y, keep_going);
  if (s.ok() && std::fflush(f_) != 0) s = Status(ErrorKind::invalid, "write error: " + errno_text());
  if (s.ok() && mode_ == Mode::replace && ::fsync(fileno(f_)) != 0 && errno != EINVAL && errno != EROFS)
    s = Status(ErrorKind::invalid, "fsync failed: " + errno_text());
  if (f_ != stdout) {
    const int rc = std::fclose(f_);
    if (s.ok() && rc != 0) s = Status(ErrorKind::invalid, "write error on close: " + errno_text());
  }
  f_ = nullptr;
  if (s.ok()) return s;
  std::string why = s.message();
  if (mode_ == Mode::replace) {
    abandon();
    if (s.kind() == ErrorKind::interrupted) why += "; nothing was written";
  } else if (s.kind() == ErrorKind::interrupted) {
    why += "; what was written so far stays";
  }
  return fail(why, s.kind());
}

Status OutputFile::publish() {
  if (mode_ != Mode::replace) return Status::Ok();
  if (tmp_.empty()) return fail("nothing to put in place");
  if (std::rename(tmp_.c_str(), target_.c_str()) != 0) {
    const Status s = fail("cannot rename the temporary file into place: " + errno_text());
    abandon();
    return s;
  }
  tmp_.clear();
  if (watch_) watch_(nullptr);
  return Status::Ok();
}

}  // namespace convnd::cli
