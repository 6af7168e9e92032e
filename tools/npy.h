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
#include <functional>
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

/// Writes a tensor as .npy (version 1.0, or 2.0 when the header needs it), in 64 MiB pieces.
/// keep_going (when given) is asked before each piece; false stops the write with an
/// ErrorKind::interrupted status.
Status write(std::FILE* f, const TensorView& t, const std::function<bool()>& keep_going = {});

/// The header text write() produces for a tensor (magic, version, length, dict, padding).
std::string make_header(DType dtype, const Shape& shape);

/// Shape as NumPy prints it: "(2, 3)", "(5,)", "()".
std::string shape_string(const Shape& shape);

/// A human-readable name of an encoding: "float32 ('<f4')".
std::string describe(const Header& h);

/// What a file that is not a regular one is, from stat's st_mode: "a directory", "a FIFO
/// (named pipe)", "a character device", "a block device", "a socket" or "a special file".
std::string file_type(unsigned st_mode);

/// Loads a whole file, which must be a regular file (or a symbolic link to one): anything else
/// (a FIFO, a device, a directory) is refused before it is read, so nothing blocks on it.
/// When expect_shape is non-null, the file's dtype and shape must equal
/// the expected ones (checked before the data is read). Messages start with the path.
/// `what` names the tensor in messages ("input x").
Status load(const std::string& path, const char* what, const DType* expect_dtype,
            const Shape* expect_shape, Tensor* out);

}  // namespace convnd::npy
