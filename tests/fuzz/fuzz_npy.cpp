// Fuzzes the .npy reader (tools/npy.cpp) through a FILE* over the input bytes, the way the
// CLI reads files. Malformed input must give a Status, never a crash, an out-of-bounds read or
// a huge allocation; a file that reads must write back and read again to the same tensor.
#include <convnd/tensor.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "npy.h"

using namespace convnd;

namespace {

[[noreturn]] void die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_npy: %s: %s\n", what, detail.c_str());
  std::abort();
}

// Reads a whole .npy image from memory.
Status read_memory(const void* data, size_t size, npy::Header* h, Tensor* t) {
  if (size == 0) return Status(ErrorKind::invalid, "empty");  // fmemopen refuses size 0
  std::FILE* f = fmemopen(const_cast<void*>(data), size, "rb");
  if (!f) die("fmemopen failed", std::to_string(size));
  Status s = npy::read_header(f, h);
  if (s.ok()) s = npy::read_data(f, *h, t, int64_t(1) << 28);
  std::fclose(f);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The dict parser alone, on the raw bytes.
  {
    npy::Header h;
    Status s = npy::parse_header_dict(reinterpret_cast<const char*>(data), size, &h);
    if (!s.ok() && s.message().empty()) die("an error without a message", "");
  }

  npy::Header h;
  Tensor t;
  Status s = read_memory(data, size, &h, &t);
  if (!s.ok()) {
    if (s.message().empty()) die("an error without a message", "");
    return 0;
  }
  if (h.data_bytes != t.nbytes()) die("data_bytes disagrees with the tensor", std::to_string(h.data_bytes));
  if (h.header_bytes + h.data_bytes != int64_t(size)) die("the file has bytes the reader did not account for", "");

  // Write it back and read it again: same dtype, shape and bytes.
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* m = open_memstream(&buf, &len);
  if (!m) die("open_memstream failed", "");
  Status w = npy::write(m, t);
  std::fclose(m);
  if (!w.ok()) die("write failed", w.message());
  if ((len - size_t(t.nbytes())) % 64 != 0) die("the written header is not padded to 64 bytes", std::to_string(len));
  npy::Header h2;
  Tensor t2;
  Status r = read_memory(buf, len, &h2, &t2);
  if (!r.ok()) die("a written file does not read back", r.message());
  if (t2.dtype() != t.dtype() || t2.shape() != t.shape()) die("the round trip changed dtype or shape", h2.descr);
  if (t.nbytes() && std::memcmp(t.data(), t2.data(), size_t(t.nbytes())) != 0) die("the round trip changed the data", "");
  std::free(buf);
  return 0;
}
