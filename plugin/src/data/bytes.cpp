#include "data/bytes.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <vector>

#include "dataproxy/error.h"

namespace dataproxy::data {

Bytes read_bytes(const fs::path& file) {
  std::error_code ec;
  DATAPROXY_CHECK(fs::is_regular_file(file, ec), DataError,
                  file.string() << ": no such file (check the path, or fetch the dataset with "
                                   "`dataproxy fetch-data`)");
  const auto size = fs::file_size(file, ec);
  DATAPROXY_CHECK(!ec, DataError, file.string() << ": cannot read its size: " << ec.message());
  std::ifstream in(file, std::ios::binary);
  DATAPROXY_CHECK(in, DataError,
                  file.string() << ": cannot open for reading: " << std::strerror(errno));
  Bytes out(size);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(size));
  DATAPROXY_CHECK(static_cast<uint64_t>(in.gcount()) == size, DataError,
                  file.string() << ": read " << in.gcount() << " of " << size
                                << " bytes (was the file changed while being read?)");
  return out;
}

bool is_gzip(const uint8_t* data, std::size_t size) {
  return size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

Bytes gunzip(const uint8_t* in, std::size_t in_size, const fs::path& file) {
  // The trailer's ISIZE (length mod 2^32) is a good first guess for the output size.
  // Deflate cannot compress better than about 1032:1, which bounds a damaged trailer's guess.
  std::size_t guess = in_size * 4;
  if (in_size >= 18) {
    const uint8_t* t = in + in_size - 4;
    guess = t[0] | (t[1] << 8) | (t[2] << 16) | (uint32_t(t[3]) << 24);
    guess = std::min<std::size_t>(guess, in_size * 1032);
  }
  guess = std::max<std::size_t>(guess, 64);
  Bytes out(guess);

  z_stream zs{};
  DATAPROXY_CHECK(inflateInit2(&zs, 15 + 16) == Z_OK, RuntimeFailure,
                  "zlib could not start decompressing " << file.string());
  std::size_t in_pos = 0, out_pos = 0;
  zs.next_in = const_cast<Bytef*>(in);
  auto fail = [&](const std::string& what) {
    inflateEnd(&zs);
    throw DataError(file.string() + ": " + what + " after " + std::to_string(out_pos) +
                    " decompressed bytes; the file is damaged: fetch it again");
  };
  for (;;) {
    if (out_pos == out.size()) out.resize(out.size() * 2);
    const std::size_t in_chunk =
        std::min<std::size_t>(in_size - in_pos, std::numeric_limits<uInt>::max());
    const std::size_t out_chunk =
        std::min<std::size_t>(out.size() - out_pos, std::numeric_limits<uInt>::max());
    zs.next_in = const_cast<Bytef*>(in + in_pos);
    zs.avail_in = static_cast<uInt>(in_chunk);
    zs.next_out = out.data() + out_pos;
    zs.avail_out = static_cast<uInt>(out_chunk);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    in_pos += in_chunk - zs.avail_in;
    out_pos += out_chunk - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (in_pos == in_size) break;
      if (in_size - in_pos >= 2 && in[in_pos] == 0x1f && in[in_pos + 1] == 0x8b) {
        inflateReset(&zs);
        continue;
      }
      fail(std::to_string(in_size - in_pos) + " bytes that are not gzip follow the stream");
    }
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
      fail(std::string("corrupt gzip data (") + (zs.msg ? zs.msg : "invalid stream") + ")");
    }
    if (rc == Z_MEM_ERROR) {
      inflateEnd(&zs);
      throw RuntimeFailure("out of memory while decompressing " + file.string());
    }
    if (in_pos == in_size && zs.avail_out != 0) fail("truncated gzip stream (input ended)");
  }
  inflateEnd(&zs);
  out.resize(out_pos);
  return out;
}

Bytes read_maybe_gzip(const fs::path& file) {
  auto bytes = read_bytes(file);
  if (is_gzip(bytes.data(), bytes.size())) return gunzip(bytes.data(), bytes.size(), file);
  return bytes;
}

void write_bytes(const fs::path& file, const void* data, std::size_t size) {
  std::FILE* f = std::fopen(file.c_str(), "wb");
  DATAPROXY_CHECK(f, RuntimeFailure,
                  "cannot create " << file.string() << ": " << std::strerror(errno)
                                   << " (check permissions and free disk space)");
  const std::size_t n = size ? std::fwrite(data, 1, size, f) : 0;
  const bool ok = n == size && std::fflush(f) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  DATAPROXY_CHECK(
      ok && closed, RuntimeFailure,
      "cannot write " << file.string() << ": " << std::strerror(err) << " (check free disk space)");
}

}  // namespace dataproxy::data
