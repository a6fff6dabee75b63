#include "data/npz.h"

#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>

#include "dataproxy/error.h"

namespace dataproxy::data {
namespace {

[[noreturn]] void bad_header(const std::string& where, const std::string& what) {
  throw DataError(where + ": bad .npy header: " + what +
                  "; write the arrays with numpy (np.savez or np.savez_compressed)");
}

/// A tiny reader for the Python dict literal NumPy writes: {'descr': '<u1', 'fortran_order':
/// False, 'shape': (3, 28, 28), }.
class DictParser {
 public:
  DictParser(std::string text, std::string where) : s_(std::move(text)), where_(std::move(where)) {}

  NpyHeader parse() {
    NpyHeader h;
    bool descr = false, order = false, shape = false;
    expect('{');
    while (skip_space(), peek() != '}') {
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        h.descr = string_literal();
        descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = boolean();
        order = true;
      } else if (key == "shape") {
        h.shape = tuple();
        shape = true;
      } else {
        bad_header(where_, "unexpected key '" + key + "'");
      }
      skip_space();
      if (peek() == ',') ++pos_;
    }
    if (!descr || !order || !shape) {
      bad_header(where_, "the dictionary lacks 'descr', 'fortran_order' or 'shape' (" + s_ + ")");
    }
    return h;
  }

 private:
  char peek() {
    if (pos_ >= s_.size()) bad_header(where_, "the dictionary ends early (" + s_ + ")");
    return s_[pos_];
  }
  void skip_space() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) {
      bad_header(where_, std::string("expected '") + c + "' at offset " + std::to_string(pos_) +
                             " of " + s_);
    }
    ++pos_;
  }
  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') bad_header(where_, "expected a quoted string in " + s_);
    const auto end = s_.find(quote, pos_ + 1);
    if (end == std::string::npos) bad_header(where_, "unterminated string in " + s_);
    std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return out;
  }
  bool boolean() {
    skip_space();
    if (s_.compare(pos_, 4, "True") == 0) return pos_ += 4, true;
    if (s_.compare(pos_, 5, "False") == 0) return pos_ += 5, false;
    bad_header(where_, "fortran_order is neither True nor False in " + s_);
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> out;
    expect('(');
    while (skip_space(), peek() != ')') {
      std::size_t used = 0;
      int64_t v = -1;
      try {
        v = std::stoll(s_.substr(pos_, 20), &used);
      } catch (const std::exception&) {
        bad_header(where_, "shape holds something other than integers: " + s_);
      }
      if (v < 0) bad_header(where_, "negative dimension in shape " + s_);
      out.push_back(v);
      pos_ += used;
      skip_space();
      if (peek() == ',') ++pos_;
    }
    ++pos_;
    return out;
  }

  std::string s_;
  std::string where_;
  std::size_t pos_ = 0;
};

}  // namespace

NpyHeader parse_npy_header(const uint8_t* bytes, std::size_t size, const std::string& where) {
  static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10 || std::memcmp(bytes, magic, 6) != 0) {
    bad_header(where, "no \\x93NUMPY magic (" + std::to_string(size) + " bytes): not a .npy array");
  }
  const int major = bytes[6];
  std::size_t len = 0, start = 0;
  if (major == 1) {
    len = bytes[8] | (std::size_t(bytes[9]) << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) bad_header(where, "truncated before the header length");
    len = bytes[8] | (std::size_t(bytes[9]) << 8) | (std::size_t(bytes[10]) << 16) |
          (std::size_t(bytes[11]) << 24);
    start = 12;
  } else {
    bad_header(where, "format version " + std::to_string(major) + " (this reader knows 1 to 3)");
  }
  if (start + len > size) {
    bad_header(where, "the header announces " + std::to_string(len) + " bytes but the array has " +
                          std::to_string(size - start) + " after the magic");
  }
  NpyHeader h =
      DictParser(std::string(reinterpret_cast<const char*>(bytes + start), len), where).parse();
  h.data_offset = start + len;
  return h;
}

torch::Tensor npy_to_tensor(const uint8_t* bytes, std::size_t size, const std::string& where,
                            NpyHeader* header_out) {
  const NpyHeader h = parse_npy_header(bytes, size, where);
  if (header_out) *header_out = h;
  std::string d = h.descr;
  char order = '|';
  if (!d.empty() && (d[0] == '<' || d[0] == '>' || d[0] == '|' || d[0] == '=')) {
    order = d[0];
    d = d.substr(1);
  }
  if (order == '=') order = '<';
  const char kind = d.empty() ? '?' : d[0];
  int width = 0;
  try {
    width = d.size() > 1 ? std::stoi(d.substr(1)) : 0;
  } catch (const std::exception&) {
    width = 0;
  }
  const bool integer = (kind == 'u' || kind == 'i' || kind == 'b') &&
                       (width == 1 || width == 2 || width == 4 || width == 8);
  const bool floating = kind == 'f' && (width == 4 || width == 8);
  DATAPROXY_CHECK(integer || floating, DataError,
                  where << ": dtype '" << h.descr
                        << "' is not supported (images must be uint8, labels any integer "
                           "type); convert the array with numpy's astype()");
  int64_t count = 1;
  for (int64_t s : h.shape) {
    DATAPROXY_CHECK(s == 0 || count <= (int64_t(1) << 40) / s, DataError,
                    where << ": shape " << torch::IntArrayRef(h.shape) << " is implausibly large");
    count *= s;
  }
  const std::size_t need = static_cast<std::size_t>(count) * static_cast<std::size_t>(width);
  DATAPROXY_CHECK(size - h.data_offset == need, DataError,
                  where << ": holds " << size - h.data_offset << " data bytes but shape "
                        << torch::IntArrayRef(h.shape) << " of dtype '" << h.descr << "' needs "
                        << need << " (truncated or damaged: write it again)");
  const uint8_t* p = bytes + h.data_offset;
  // Fortran order stores the reversed shape in C order; a permute restores the axes.
  std::vector<int64_t> stored(h.shape);
  if (h.fortran_order) std::reverse(stored.begin(), stored.end());
  torch::Tensor out;
  if (width == 1 && kind != 'i') {
    out = torch::empty(stored, torch::kUInt8);
    std::memcpy(out.data_ptr<uint8_t>(), p, need);
  } else {
    const bool big = order == '>';
    auto word = [&](int64_t i) {
      uint64_t v = 0;
      const uint8_t* q = p + i * width;
      for (int b = 0; b < width; ++b) v |= uint64_t(q[big ? width - 1 - b : b]) << (8 * b);
      return v;
    };
    if (floating) {
      out = torch::empty(stored, torch::kFloat64);
      auto* o = out.data_ptr<double>();
      for (int64_t i = 0; i < count; ++i) {
        const uint64_t v = word(i);
        if (width == 8) {
          std::memcpy(&o[i], &v, 8);
        } else {
          const auto v32 = static_cast<uint32_t>(v);
          float f;
          std::memcpy(&f, &v32, 4);
          o[i] = f;
        }
      }
    } else {
      out = torch::empty(stored, torch::kInt64);
      auto* o = out.data_ptr<int64_t>();
      const int shift = 64 - 8 * width;
      for (int64_t i = 0; i < count; ++i) {
        const uint64_t v = word(i);
        // Sign-extend signed types; unsigned 64-bit values above INT64_MAX become negative
        // and are refused as labels < 0 by the caller.
        o[i] = kind == 'i' ? static_cast<int64_t>(v << shift) >> shift : static_cast<int64_t>(v);
      }
    }
  }
  if (h.fortran_order && out.dim() > 1) {
    std::vector<int64_t> perm(static_cast<std::size_t>(out.dim()));
    for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = out.dim() - 1 - int64_t(i);
    out = out.permute(perm).contiguous();
  }
  return out;
}

std::map<std::string, std::vector<uint8_t>> read_npz(const fs::path& file) {
  std::error_code ec;
  DATAPROXY_CHECK(fs::is_regular_file(file, ec), DataError,
                  file.string() << ": no such file; --data-root for --dataset npz is the .npz "
                                   "file itself (written by np.savez or np.savez_compressed)");
  int err = 0;
  zip_t* zip = zip_open(file.c_str(), ZIP_RDONLY, &err);
  if (!zip) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, err);
    const std::string why = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    throw DataError(file.string() + ": not a readable .npz (zip) archive (" + why +
                    "); write it with np.savez or np.savez_compressed");
  }
  std::unique_ptr<zip_t, void (*)(zip_t*)> guard(zip, [](zip_t* z) { zip_discard(z); });
  std::map<std::string, std::vector<uint8_t>> out;
  const zip_int64_t n = zip_get_num_entries(zip, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(zip, static_cast<zip_uint64_t>(i), 0, &st) != 0) continue;
    std::string name = st.name ? st.name : "";
    if (name.size() < 5 || name.compare(name.size() - 4, 4, ".npy") != 0) continue;
    const std::string where = file.string() + ":" + name;
    DATAPROXY_CHECK(st.valid & ZIP_STAT_SIZE, DataError, where << ": size unknown (damaged zip)");
    std::vector<uint8_t> bytes(static_cast<std::size_t>(st.size));
    zip_file_t* f = zip_fopen_index(zip, static_cast<zip_uint64_t>(i), 0);
    DATAPROXY_CHECK(f, DataError,
                    where << ": cannot open the member (" << zip_strerror(zip)
                          << "); the archive is damaged: write it again");
    std::size_t got = 0;
    while (got < bytes.size()) {
      const zip_int64_t r = zip_fread(f, bytes.data() + got, bytes.size() - got);
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    const std::string why = zip_file_strerror(f);
    // zip_fclose reports a CRC mismatch of the member.
    const int closed = zip_fclose(f);
    DATAPROXY_CHECK(got == bytes.size() && closed == 0, DataError,
                    where << ": damaged member (read " << got << " of " << bytes.size()
                          << " bytes; " << why << "); write the .npz again");
    out[name.substr(0, name.size() - 4)] = std::move(bytes);
  }
  return out;
}

}  // namespace dataproxy::data
