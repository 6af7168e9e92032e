// Problem strings (../shared/spec/problem-strings.md): parse, and print the canonical form.
// The parser checks syntax and ranks; validate() checks the semantic rules.
#include <algorithm>
#include <charconv>
#include <convnd/problem.h>
#include <string>
#include <vector>

namespace convnd {

namespace {

constexpr std::string_view kKeys[] = {"op",  "n",   "in",     "c", "o",    "k",     "stride",
                                      "pad", "dil", "idil", "outpad", "g", "flip", "dtype", "dir"};

Status syntax_error(std::string_view text, const std::string& what) {
  return Status(ErrorKind::invalid, "[problem] " + what + "; problem: " + std::string(text));
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

// A whole decimal integer (optional '-' when allowed), no spaces, no '+', within int64.
bool parse_int(std::string_view s, bool allow_negative, int64_t* out) {
  if (s.empty()) return false;
  if (s[0] == '-' && !allow_negative) return false;
  if (s[0] == '+') return false;
  const char* b = s.data();
  const char* e = b + s.size();
  auto [ptr, ec] = std::from_chars(b, e, *out);
  return ec == std::errc() && ptr == e;
}

std::string join_dims(const Problem& p, const Dims& v, bool collapse) {
  int rank = std::clamp(p.rank, 1, 3);
  bool all_equal = true;
  for (int i = 1; i < rank; ++i) all_equal = all_equal && v[i] == v[0];
  std::string s;
  int count = (collapse && all_equal) ? 1 : rank;
  for (int i = 0; i < count; ++i) {
    if (i) s += 'x';
    s += std::to_string(v[i]);
  }
  return s;
}

bool is_all(const Problem& p, const Dims& v, int64_t value) {
  for (int i = 0; i < std::clamp(p.rank, 1, 3); ++i)
    if (v[i] != value) return false;
  return true;
}

}  // namespace

Status parse_problem(std::string_view text, Problem* out) {
  std::string_view body = text.substr(0, text.find('#'));
  Problem p;
  bool seen[std::size(kKeys)] = {};
  // Per-axis fields are kept as text until the rank is known from `in`.
  std::string_view raw[std::size(kKeys)];
  size_t pos = 0;
  bool any = false;
  while (pos < body.size()) {
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t' || body[pos] == '\r' || body[pos] == '\n')) ++pos;
    if (pos >= body.size()) break;
    size_t end = pos;
    while (end < body.size() && body[end] != ' ' && body[end] != '\t' && body[end] != '\r' && body[end] != '\n') ++end;
    std::string_view field = body.substr(pos, end - pos);
    pos = end;
    any = true;
    size_t eq = field.find('=');
    if (eq == std::string_view::npos)
      return syntax_error(text, "field '" + std::string(field) + "' is not of the form key=value");
    std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
    size_t idx = std::size(kKeys);
    for (size_t i = 0; i < std::size(kKeys); ++i)
      if (kKeys[i] == key) idx = i;
    if (idx == std::size(kKeys)) return syntax_error(text, "unknown field '" + std::string(key) + "'");
    if (seen[idx]) return syntax_error(text, "field '" + std::string(key) + "' is repeated");
    if (value.empty()) return syntax_error(text, "field '" + std::string(key) + "' has no value");
    seen[idx] = true;
    raw[idx] = value;
  }
  if (!any) return syntax_error(text, "empty problem string");
  auto field = [&](std::string_view k) -> size_t {
    for (size_t i = 0; i < std::size(kKeys); ++i)
      if (kKeys[i] == k) return i;
    return 0;
  };
  auto bad = [&](std::string_view key, const std::string& why) {
    return syntax_error(text, "field '" + std::string(key) + "': " + why);
  };
  auto scalar = [&](std::string_view key, int64_t* dst, bool negative_ok = false) -> Status {
    size_t i = field(key);
    if (!seen[i]) return Status::Ok();
    if (!parse_int(raw[i], negative_ok, dst))
      return bad(key, "'" + std::string(raw[i]) + "' is not a " +
                          (negative_ok ? "" : "non-negative ") + "integer within int64");
    return Status::Ok();
  };

  if (seen[field("op")]) {
    std::string_view v = raw[field("op")];
    if (v == "conv") p.op = Op::conv;
    else if (v == "convT") p.op = Op::conv_transpose;
    else return bad("op", "'" + std::string(v) + "' is not conv or convT");
  }
  for (const char* key : {"in", "c", "o"})
    if (!seen[field(key)]) return syntax_error(text, "field '" + std::string(key) + "' is required");

  // Extents: `in` fixes the rank, `k` must agree.
  auto extents = [&](std::string_view key, Dims* dst, int* rank) -> Status {
    auto parts = split(raw[field(key)], 'x');
    if (parts.size() > 3) return bad(key, "has " + std::to_string(parts.size()) + " axes; the rank is 1 to 3");
    if (rank && *rank && int(parts.size()) != *rank)
      return bad(key, "has " + std::to_string(parts.size()) + " axes but in has " + std::to_string(*rank));
    for (size_t i = 0; i < parts.size(); ++i)
      if (!parse_int(parts[i], false, &(*dst)[i]))
        return bad(key, "'" + std::string(parts[i]) + "' is not a non-negative integer within int64");
    if (rank && !*rank) *rank = int(parts.size());
    return Status::Ok();
  };
  int rank = 0;
  if (Status s = extents("in", &p.in, &rank); !s.ok()) return s;
  p.rank = rank;
  if (seen[field("k")])
    if (Status s = extents("k", &p.k, &rank); !s.ok()) return s;

  // One value for every axis, or one per axis.
  auto per_axis = [&](std::string_view key, Dims* dst) -> Status {
    size_t i = field(key);
    if (!seen[i]) return Status::Ok();
    auto parts = split(raw[i], 'x');
    if (parts.size() != 1 && int(parts.size()) != rank)
      return bad(key, "has " + std::to_string(parts.size()) + " values; expected 1 or " + std::to_string(rank));
    for (int a = 0; a < rank; ++a) {
      std::string_view part = parts[parts.size() == 1 ? 0 : a];
      if (!parse_int(part, false, &(*dst)[a]))
        return bad(key, "'" + std::string(part) + "' is not a non-negative integer within int64");
    }
    return Status::Ok();
  };
  for (auto [key, dst] : {std::pair{"stride", &p.stride}, {"dil", &p.dil}, {"idil", &p.idil}, {"outpad", &p.outpad}})
    if (Status s = per_axis(key, dst); !s.ok()) return s;

  if (size_t i = field("pad"); seen[i]) {
    auto parts = split(raw[i], 'x');
    if (parts.size() != 1 && int(parts.size()) != rank)
      return bad("pad", "has " + std::to_string(parts.size()) + " entries; expected 1 or " + std::to_string(rank));
    for (int a = 0; a < rank; ++a) {
      std::string_view part = parts[parts.size() == 1 ? 0 : a];
      size_t colon = part.find(':');
      bool ok;
      if (colon == std::string_view::npos) {
        ok = parse_int(part, true, &p.pad_lo[a]);
        p.pad_hi[a] = p.pad_lo[a];
      } else {
        ok = parse_int(part.substr(0, colon), true, &p.pad_lo[a]) &&
             parse_int(part.substr(colon + 1), true, &p.pad_hi[a]);
      }
      if (!ok) return bad("pad", "'" + std::string(part) + "' is not an integer or lo:hi pair within int64");
    }
  }
  if (Status s = scalar("n", &p.n); !s.ok()) return s;
  if (Status s = scalar("c", &p.c); !s.ok()) return s;
  if (Status s = scalar("o", &p.o); !s.ok()) return s;
  if (Status s = scalar("g", &p.groups); !s.ok()) return s;
  if (size_t i = field("flip"); seen[i]) {
    if (raw[i] != "0" && raw[i] != "1") return bad("flip", "'" + std::string(raw[i]) + "' is not 0 or 1");
    p.flip = raw[i] == "1";
  }
  if (size_t i = field("dtype"); seen[i] && !parse_dtype(raw[i], &p.dtype))
    return bad("dtype", "'" + std::string(raw[i]) + "' is not f32, f16, bf16 or f64");
  if (size_t i = field("dir"); seen[i] && !parse_direction(raw[i], &p.dir))
    return bad("dir", "'" + std::string(raw[i]) + "' is not fwd, bwd_d or bwd_w");
  if (p.op == Op::conv_transpose) {
    if (seen[field("idil")]) return bad("idil", "input dilation applies to op=conv only");
    if (seen[field("flip")]) return bad("flip", "flip applies to op=conv only");
  } else if (seen[field("outpad")]) {
    return bad("outpad", "output padding applies to op=convT only");
  }
  *out = p;
  return Status::Ok();
}

Problem parse_problem(std::string_view text) {
  Problem p;
  throw_if_error(parse_problem(text, &p));
  return p;
}

std::string to_string(const Problem& p) {
  std::string s;
  auto add = [&](std::string_view key, const std::string& value) {
    if (!s.empty()) s += ' ';
    s += key;
    s += '=';
    s += value;
  };
  if (p.op == Op::conv_transpose) add("op", "convT");
  if (p.n != 1) add("n", std::to_string(p.n));
  add("in", join_dims(p, p.in, false));
  add("c", std::to_string(p.c));
  add("o", std::to_string(p.o));
  if (!is_all(p, p.k, 1)) add("k", join_dims(p, p.k, false));
  if (!is_all(p, p.stride, 1)) add("stride", join_dims(p, p.stride, true));
  if (!is_all(p, p.pad_lo, 0) || !is_all(p, p.pad_hi, 0)) {
    int rank = std::clamp(p.rank, 1, 3);
    std::vector<std::string> entries;
    for (int i = 0; i < rank; ++i)
      entries.push_back(p.pad_lo[i] == p.pad_hi[i]
                            ? std::to_string(p.pad_lo[i])
                            : std::to_string(p.pad_lo[i]) + ":" + std::to_string(p.pad_hi[i]));
    bool all_equal = true;
    for (int i = 1; i < rank; ++i) all_equal = all_equal && entries[i] == entries[0];
    std::string v;
    for (int i = 0; i < (all_equal ? 1 : rank); ++i) v += (i ? "x" : "") + entries[i];
    add("pad", v);
  }
  if (!is_all(p, p.dil, 1)) add("dil", join_dims(p, p.dil, true));
  if (!is_all(p, p.idil, 1)) add("idil", join_dims(p, p.idil, true));
  if (!is_all(p, p.outpad, 0)) add("outpad", join_dims(p, p.outpad, true));
  if (p.groups != 1) add("g", std::to_string(p.groups));
  if (p.flip) add("flip", "1");
  if (p.dtype != DType::f32) add("dtype", std::string(dtype_name(p.dtype)));
  if (p.dir != Direction::fwd) add("dir", std::string(direction_name(p.dir)));
  return s;
}

}  // namespace convnd
