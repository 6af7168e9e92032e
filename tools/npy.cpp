// NumPy .npy reader and writer (format: numpy.lib.format). The header is a Python dict
// literal; it is parsed here by a small, bounds-checked scanner, never evaluated.
#include "npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <vector>

namespace convnd::npy {

static_assert(std::endian::native == std::endian::little, "the .npy code assumes a little-endian host");

namespace {

bool checked_mul(int64_t a, int64_t b, int64_t* r) { return !__builtin_mul_overflow(a, b, r); }
bool checked_add(int64_t a, int64_t b, int64_t* r) { return !__builtin_add_overflow(a, b, r); }

constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes
constexpr int64_t kChunk = int64_t(1) << 26;  // bytes per fread/fwrite call

Status fail(const std::string& why) { return Status(ErrorKind::invalid, why); }


int64_t encoding_size(Encoding e) { return e == Encoding::f64 ? 8 : (e == Encoding::f32 ? 4 : 2); }

// A bounds-checked scanner over the header dict.
class Scanner {
 public:
  Scanner(const char* p, size_t n) : p_(p), end_(p + n) {}
  void skip_space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool at_end() const { return p_ >= end_; }
  char peek() const { return p_ < end_ ? *p_ : '\0'; }
  bool eat(char c) {
    skip_space();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  // A Python string literal in single or double quotes, without escapes (NumPy never writes any).
  bool string(std::string* out) {
    skip_space();
    if (p_ >= end_ || (*p_ != '\'' && *p_ != '"')) return false;
    const char quote = *p_++;
    const char* start = p_;
    while (p_ < end_ && *p_ != quote) {
      if (*p_ == '\\' || *p_ == '\n') return false;
      ++p_;
    }
    if (p_ >= end_) return false;
    out->assign(start, size_t(p_ - start));
    ++p_;
    return true;
  }
  bool identifier(std::string* out) {
    skip_space();
    const char* start = p_;
    while (p_ < end_ && ((*p_ >= 'a' && *p_ <= 'z') || (*p_ >= 'A' && *p_ <= 'Z') || *p_ == '_')) ++p_;
    out->assign(start, size_t(p_ - start));
    return !out->empty();
  }
  // A non-negative decimal integer within int64 (an old Python 2 'L' suffix is accepted).
  // Returns 0 when there is no digit, -1 on overflow or a sign, 1 on success.
  int integer(int64_t* out) {
    skip_space();
    if (p_ < end_ && (*p_ == '-' || *p_ == '+')) return -1;
    if (p_ >= end_ || *p_ < '0' || *p_ > '9') return 0;
    int64_t v = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      if (!checked_mul(v, 10, &v) || !checked_add(v, *p_ - '0', &v)) return -1;
      ++p_;
    }
    if (p_ < end_ && *p_ == 'L') ++p_;
    *out = v;
    return 1;
  }

 private:
  const char* p_;
  const char* end_;
};

bool parse_descr(const std::string& d, Encoding* e) {
  if (d == "<f2" || d == "=f2") *e = Encoding::f16;
  else if (d == "<f4" || d == "=f4") *e = Encoding::f32;
  else if (d == "<f8" || d == "=f8") *e = Encoding::f64;
  else if (d == "<V2" || d == "|V2" || d == "<u2" || d == "=u2") *e = Encoding::raw16;
  else return false;
  return true;
}

std::string printable(const std::string& s) {
  std::string r;
  for (char c : s.substr(0, 40)) r += (uint8_t(c) < 0x20 || uint8_t(c) >= 0x7f) ? '?' : c;
  if (s.size() > 40) r += "...";
  return r;
}

}  // namespace

DType encoding_dtype(Encoding e) {
  switch (e) {
    case Encoding::f16: return DType::f16;
    case Encoding::f32: return DType::f32;
    case Encoding::f64: return DType::f64;
    case Encoding::raw16: return DType::bf16;
  }
  return DType::f32;
}

Encoding dtype_encoding(DType t) {
  switch (t) {
    case DType::f16: return Encoding::f16;
    case DType::f32: return Encoding::f32;
    case DType::f64: return Encoding::f64;
    case DType::bf16: return Encoding::raw16;
  }
  return Encoding::f32;
}

static const char* descr_for(DType t) {
  switch (t) {
    case DType::f16: return "<f2";
    case DType::f32: return "<f4";
    case DType::f64: return "<f8";
    case DType::bf16: return "<V2";
  }
  return "<f4";
}

std::string shape_string(const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) s += ",";
  return s + ")";
}

std::string describe(const Header& h) {
  const char* name = "float32";
  switch (h.encoding) {
    case Encoding::f16: name = "float16"; break;
    case Encoding::f32: name = "float32"; break;
    case Encoding::f64: name = "float64"; break;
    case Encoding::raw16: name = "bfloat16 bits"; break;
  }
  return std::string(name) + " ('" + h.descr + "')";
}

Status parse_header_dict(const char* text, size_t size, Header* out) {
  Scanner s(text, size);
  if (!s.eat('{')) return fail("the header is not a dict (it does not start with '{')");
  bool have_descr = false, have_order = false, have_shape = false;
  for (;;) {
    if (s.eat('}')) break;
    std::string key;
    if (!s.string(&key)) return fail("the header dict is malformed or not terminated (expected a quoted key or '}')");
    if (!s.eat(':')) return fail("the header dict is malformed: no ':' after key '" + printable(key) + "'");
    if (key == "descr") {
      if (have_descr) return fail("the header repeats 'descr'");
      have_descr = true;
      s.skip_space();
      if (s.peek() == '[') return fail("structured dtypes are not supported (descr is a list)");
      if (!s.string(&out->descr)) return fail("the header's 'descr' is not a string");
      if (!parse_descr(out->descr, &out->encoding))
        return fail("dtype '" + printable(out->descr) +
                    "' is not supported (expected little-endian float16 '<f2', float32 '<f4', float64 '<f8', "
                    "or bfloat16 as '<V2' / '<u2')");
    } else if (key == "fortran_order") {
      if (have_order) return fail("the header repeats 'fortran_order'");
      have_order = true;
      std::string v;
      if (!s.identifier(&v) || (v != "True" && v != "False"))
        return fail("the header's 'fortran_order' is not True or False");
      out->fortran_order = v == "True";
    } else if (key == "shape") {
      if (have_shape) return fail("the header repeats 'shape'");
      have_shape = true;
      if (!s.eat('(')) return fail("the header's 'shape' is not a tuple");
      out->shape.clear();
      for (;;) {
        if (s.eat(')')) break;
        int64_t v;
        int r = s.integer(&v);
        if (r < 0) return fail("the header's 'shape' has a negative or too large extent");
        if (r == 0) return fail("the header's 'shape' is malformed (expected an integer or ')')");
        if (int(out->shape.size()) >= kMaxDims)
          return fail("the header's 'shape' has more than " + std::to_string(kMaxDims) + " dimensions");
        out->shape.push_back(v);
        if (!s.eat(',')) {
          if (!s.eat(')')) return fail("the header's 'shape' is malformed (expected ',' or ')')");
          break;
        }
      }
    } else {
      return fail("the header has an unexpected key '" + printable(key) + "'");
    }
    if (!s.eat(',')) {
      if (!s.eat('}')) return fail("the header dict is malformed or not terminated (expected ',' or '}')");
      break;
    }
  }
  s.skip_space();
  if (!s.at_end()) return fail("the header has unexpected text after the dict");
  if (!have_descr || !have_order || !have_shape)
    return fail(std::string("the header lacks '") + (!have_descr ? "descr" : !have_order ? "fortran_order" : "shape") + "'");
  // The byte count must fit in int64, and so must the strides: a zero extent makes the
  // element count 0 but leaves the other extents' product to the stride computation.
  int64_t n = 1, strided = 1;
  for (int64_t e : out->shape)
    if (!checked_mul(n, e, &n) || !checked_mul(strided, e ? e : 1, &strided))
      return fail("the shape " + shape_string(out->shape) + " has more elements than int64 can count");
  if (!checked_mul(strided, encoding_size(out->encoding), &strided) ||
      !checked_mul(n, encoding_size(out->encoding), &out->data_bytes))
    return fail("the shape " + shape_string(out->shape) + " has more bytes than int64 can count");
  return Status::Ok();
}

Status read_header(std::FILE* f, Header* out) {
  unsigned char pre[8];
  size_t got = std::fread(pre, 1, sizeof pre, f);
  if (got < 6 || std::memcmp(pre, kMagic, 6) != 0)
    return fail("not a .npy file (it does not start with the magic string \\x93NUMPY)");
  if (got < 8) return fail("truncated in the header (no version)");
  out->major = pre[6];
  out->minor = pre[7];
  int64_t len_bytes;
  if (out->major == 1) len_bytes = 2;
  else if (out->major == 2 || out->major == 3) len_bytes = 4;
  else
    return fail("unsupported .npy version " + std::to_string(out->major) + "." + std::to_string(out->minor) +
                " (1.0, 2.0 and 3.0 are read)");
  unsigned char lb[4] = {};
  if (std::fread(lb, 1, size_t(len_bytes), f) != size_t(len_bytes)) return fail("truncated in the header (no length)");
  int64_t hlen = int64_t(lb[0]) | int64_t(lb[1]) << 8 | int64_t(lb[2]) << 16 | int64_t(lb[3]) << 24;
  if (hlen > kMaxHeaderBytes)
    return fail("header length " + std::to_string(hlen) + " exceeds the limit of " + std::to_string(kMaxHeaderBytes) +
                " bytes");
  std::string text(size_t(hlen), '\0');
  if (std::fread(text.data(), 1, text.size(), f) != text.size())
    return fail("truncated in the header (the length field says " + std::to_string(hlen) + " bytes)");
  out->header_bytes = 8 + len_bytes + hlen;
  return parse_header_dict(text.data(), text.size(), out);
}

Status read_data(std::FILE* f, const Header& h, Tensor* out, int64_t max_bytes) {
  if (h.fortran_order)
    return fail("is in Fortran order; save a C-order array (np.ascontiguousarray) instead");
  // Compare the promised size with the file's before allocating anything.
  const off_t here = ftello(f);
  bool seekable = here >= 0 && fseeko(f, 0, SEEK_END) == 0;
  if (seekable) {
    const off_t end = ftello(f);
    if (end < 0 || fseeko(f, here, SEEK_SET) != 0) return fail("cannot seek in the file");
    const int64_t remaining = int64_t(end) - int64_t(here);
    if (remaining < h.data_bytes)
      return fail("is truncated: the header's shape " + shape_string(h.shape) + " needs " + std::to_string(h.data_bytes) +
                  " data bytes, the file has " + std::to_string(remaining));
    if (remaining > h.data_bytes)
      return fail("has " + std::to_string(remaining - h.data_bytes) + " bytes after the data of shape " +
                  shape_string(h.shape));
  }
  std::clearerr(f);
  if (max_bytes >= 0 && h.data_bytes > max_bytes)
    return Status(ErrorKind::out_of_memory, "needs " + std::to_string(h.data_bytes) + " bytes, over the limit of " +
                                                std::to_string(max_bytes));
  Tensor t;
  try {
    t = Tensor::empty(encoding_dtype(h.encoding), h.shape);
  } catch (const Error& e) {
    return Status(e.kind(), e.what());
  }
  char* dst = static_cast<char*>(t.data());
  for (int64_t done = 0; done < h.data_bytes;) {
    const size_t want = size_t(std::min(kChunk, h.data_bytes - done));
    const size_t got = std::fread(dst + done, 1, want, f);
    done += int64_t(got);
    if (got != want)
      return fail(std::ferror(f) ? std::string("read error: ") + std::strerror(errno)
                                 : "is truncated: the header's shape " + shape_string(h.shape) + " needs " +
                                       std::to_string(h.data_bytes) + " data bytes, the file has " + std::to_string(done));
  }
  if (!seekable && std::fgetc(f) != EOF) return fail("has bytes after the data of shape " + shape_string(h.shape));
  *out = std::move(t);
  return Status::Ok();
}

std::string make_header(DType dtype, const Shape& shape) {
  std::string dict = std::string("{'descr': '") + descr_for(dtype) + "', 'fortran_order': False, 'shape': " +
                     shape_string(shape) + ", }";
  // Pad with spaces and end with '\n' so that the data starts at a multiple of 64 bytes.
  int64_t pre = 10;
  if (int64_t(dict.size()) + 1 + pre > 65535) pre = 12;
  int64_t total = pre + int64_t(dict.size()) + 1;
  int64_t padded = (total + 63) / 64 * 64;
  dict.append(size_t(padded - total), ' ');
  dict += '\n';
  const int64_t hlen = int64_t(dict.size());
  std::string h(kMagic, 6);
  h += char(pre == 10 ? 1 : 2);
  h += char(0);
  h += char(hlen & 0xff);
  h += char((hlen >> 8) & 0xff);
  if (pre == 12) {
    h += char((hlen >> 16) & 0xff);
    h += char((hlen >> 24) & 0xff);
  }
  return h + dict;
}

Status write(std::FILE* f, const TensorView& t, const std::function<bool()>& keep_going) {
  Tensor dense;
  const TensorView* v = &t;
  if (!t.is_contiguous()) {
    dense = contiguous_copy(t);
    v = &dense.view();
  }
  const std::string h = make_header(v->dtype, v->shape);
  if (std::fwrite(h.data(), 1, h.size(), f) != h.size()) return fail(std::string("write error: ") + std::strerror(errno));
  const char* src = static_cast<const char*>(v->data);
  const int64_t bytes = v->nbytes();
  for (int64_t done = 0; done < bytes;) {
    if (keep_going && !keep_going()) return Status(ErrorKind::interrupted, "interrupted while writing");
    const size_t want = size_t(std::min(kChunk, bytes - done));
    if (std::fwrite(src + done, 1, want, f) != want) return fail(std::string("write error: ") + std::strerror(errno));
    done += int64_t(want);
  }
  return Status::Ok();
}

std::string file_type(unsigned st_mode) {
  const mode_t m = st_mode;
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "a special file";
}

Status load(const std::string& path, const char* what, const DType* expect_dtype, const Shape* expect_shape,
            Tensor* out) {
  auto err = [&](const Status& s) {
    return Status(s.kind(), "[npy] " + path + " (" + what + "): " + s.message());
  };
  // O_NONBLOCK: opening a FIFO without a writer would wait for one. The type is checked on
  // the open descriptor, so it is the file that is read.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return err(fail(std::string("cannot open: ") + std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const Status s = fail(std::string("cannot stat: ") + std::strerror(errno));
    ::close(fd);
    return err(s);
  }
  if (!S_ISREG(st.st_mode)) {
    const std::string type = file_type(st.st_mode);
    ::close(fd);
    return err(fail("is " + type + ", not a regular file; .npy inputs are read from regular files only"));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::FILE* f = ::fdopen(fd, "rb");
  if (!f) {
    ::close(fd);
    return err(fail(std::string("cannot open: ") + std::strerror(errno)));
  }
  Header h;
  Status s = read_header(f, &h);
  if (s.ok() && expect_dtype && encoding_dtype(h.encoding) != *expect_dtype)
    s = fail("holds " + describe(h) + " but the problem's dtype is " + std::string(dtype_name(*expect_dtype)));
  if (s.ok() && expect_shape && h.shape != *expect_shape)
    s = fail("has shape " + shape_string(h.shape) + " but the problem needs shape " + shape_string(*expect_shape) +
             " (channels-last, C order)");
  if (s.ok()) s = read_data(f, h, out);
  std::fclose(f);
  return s.ok() ? s : err(s);
}

}  // namespace convnd::npy
