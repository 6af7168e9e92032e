// NumPy .npy files: versions 1.0, 2.0 and 3.0, little-endian, C order, for the four dtypes
// of the library. bfloat16 is written with descr '<V2' (what NumPy writes for an ml_dtypes
// bfloat16 array; load it back with np.load(f).view(ml_dtypes.bfloat16)); '<V2', '|V2' and
// '<u2' (raw bit patterns) are read as bfloat16. The reader never trusts the file: every
// size is checked before anything is allocated or read, and every failure is a Status.
#pragma once
#include <convnd/status.h>
#include <convnd/tensor.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace convnd::npy {

/// Element encodings a .npy file may hold (what its descr says).
enum class Encoding : uint8_t { f16, f32, f64, raw16 /* '<V2', '|V2', '<u2': bfloat16 bits */ };

/// The library dtype an encoding is read as.
DType encoding_dtype(Encoding e);
/// The encoding a dtype is written with.
Encoding dtype_encoding(DType t);

/// A parsed .npy header.
struct Header {
  int major = 1;
  int minor = 0;
  std::string descr;  // as written, e.g. "<f4"
  Encoding encoding = Encoding::f32;
  bool fortran_order = false;
  Shape shape;
  int64_t header_bytes = 0;  // offset of the data from the start of the file
  int64_t data_bytes = 0;    // elements x element size (checked)
};

/// Upper bound on the header length (the bytes after the length field) the reader accepts.
inline constexpr int64_t kMaxHeaderBytes = int64_t(1) << 20;
/// Upper bound on the number of dimensions (NumPy's own limit is 64).
inline constexpr int kMaxDims = 64;

/// Parses the dict part of a header ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }").
/// `text` need not be NUL-terminated; `out` gets descr, encoding, fortran_order, shape, data_bytes.
Status parse_header_dict(const char* text, size_t size, Header* out);

/// Reads and parses the header at the current position of f (its start). On success f is
/// positioned at the first data byte.
Status read_header(std::FILE* f, Header* out);

/// Reads the data that follows a header into a new dense tensor. Checks, before allocating,
/// that the file holds exactly header.data_bytes more bytes when f is seekable, and rejects
/// Fortran order. `max_bytes` >= 0 caps the allocation (fuzzing).
Status read_data(std::FILE* f, const Header& h, Tensor* out, int64_t max_bytes = -1);

/// Writes a dense tensor as .npy (version 1.0, or 2.0 when the header needs it).
Status write(std::FILE* f, const TensorView& t);

/// The header text write() produces for a tensor (magic, version, length, dict, padding).
std::string make_header(DType dtype, const Shape& shape);

/// Shape as NumPy prints it: "(2, 3)", "(5,)", "()".
std::string shape_string(const Shape& shape);

/// A human-readable name of an encoding: "float32 ('<f4')".
std::string describe(const Header& h);

/// Loads a whole file. When expect_shape is non-null, the file's dtype and shape must equal
/// the expected ones (checked before the data is read). Messages start with the path.
/// `what` names the tensor in messages ("input x").
Status load(const std::string& path, const char* what, const DType* expect_dtype,
            const Shape* expect_shape, Tensor* out);

/// Writes a file atomically: the data goes to a temporary file in the same directory, which is
/// renamed over `path` only when everything was written; on failure nothing is left behind.
class AtomicWriter {
 public:
  AtomicWriter() = default;
  ~AtomicWriter();
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  /// Creates the temporary file (so that an unwritable directory fails before a long run).
  Status open(const std::string& path);
  /// Writes the tensor, flushes it to disk and renames the file into place.
  Status commit(const TensorView& t);
  /// Removes the temporary file (also done by the destructor unless commit() succeeded).
  void abandon();
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
};

}  // namespace convnd::npy
