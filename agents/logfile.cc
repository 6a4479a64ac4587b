#include "agents/logfile.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace cb {
namespace {

constexpr size_t kChunk = 64u << 10;
// A follower that fell behind by more than this skips ahead (and says so).
constexpr uint64_t kMaxFollowBytesPerPoll = 4u << 20;

// Closes an fd on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) {
        ::close(fd_);
      }
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

// stat() that returns inode/size, or ino 0 when the file does not exist.
struct FileId {
  ino_t ino = 0;
  uint64_t size = 0;
};
FileId StatFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return {};
  }
  return {st.st_ino, static_cast<uint64_t>(st.st_size)};
}

int FlockRetry(int fd, int op) {
  int rc;
  do {
    rc = ::flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

// Appends [offset, end) of fd to out (stops early at EOF).
Result<void> PreadRange(int fd, uint64_t offset, uint64_t end, std::string* out,
                        const std::string& what) {
  std::string buf(kChunk, '\0');
  while (offset < end) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, end - offset));
    ssize_t r = ::pread(fd, buf.data(), want, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Err(ErrnoError("read " + what, errno));
    }
    if (r == 0) {
      break;
    }
    out->append(buf.data(), static_cast<size_t>(r));
    offset += static_cast<uint64_t>(r);
  }
  return Ok();
}

Result<void> WriteAll(int fd, const char* p, size_t n, const std::string& what) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Err(ErrnoError("write " + what, errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Ok();
}

// Copies [from, to) of src into dst (appending); to == UINT64_MAX copies until EOF. Returns
// the number of bytes copied.
Result<uint64_t> CopyRange(int src, int dst, uint64_t from, uint64_t to,
                           const std::string& src_name, const std::string& dst_name) {
  std::string buf(kChunk, '\0');
  uint64_t off = from;
  while (off < to) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, to - off));
    ssize_t r = ::pread(src, buf.data(), want, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Err(ErrnoError("read " + src_name, errno));
    }
    if (r == 0) {
      break;
    }
    CB_TRY_VOID(WriteAll(dst, buf.data(), static_cast<size_t>(r), dst_name));
    off += static_cast<uint64_t>(r);
  }
  return off - from;
}

// Shifts .1 -> .2 ... (.keep-1 -> .keep, replacing the oldest), then renames tmp to .1.
Result<void> ShiftAndInstall(const std::string& log_path, int keep, const std::string& tmp) {
  for (int i = keep; i >= 2; --i) {
    std::string from = RotatedPath(log_path, i - 1);
    std::string to = RotatedPath(log_path, i);
    if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
      int e = errno;
      std::string what = "rename ";
      what.append(from).append(" to ").append(to);
      return Err(ErrnoError(what, e));
    }
  }
  std::string first = RotatedPath(log_path, 1);
  if (::rename(tmp.c_str(), first.c_str()) != 0) {
    return Err(ErrnoError("rename " + tmp + " to " + first, errno));
  }
  return Ok();
}

// Replaces invalid UTF-8 with U+FFFD so lines can always be put into JSON.
std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t min = 0;
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      min = 0x10000;
    }
    bool valid = len > 0 && i + len <= s.size();
    uint32_t cp = len > 0 ? (c & (0x7F >> len)) : 0;
    for (size_t k = 1; valid && k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        valid = false;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (valid && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) {
      valid = false;
    }
    if (valid) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

}  // namespace

std::string LogDir(const std::string& state_dir) { return state_dir + "/logs"; }
std::string LogPath(const std::string& state_dir, const std::string& name) {
  return LogDir(state_dir) + "/" + name + ".log";
}
std::string RotatedPath(const std::string& log_path, int index) {
  if (index <= 0) {
    return log_path;
  }
  return log_path + "." + std::to_string(index);
}

Result<void> EnsureLogDir(const std::string& state_dir) {
  std::string dir = LogDir(state_dir);
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return Err(ErrnoError("create log directory " + dir, errno));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return Err(ErrnoError("stat " + dir, errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Err(Code::kIo, "log directory {} is not a directory", dir);
  }
  return Ok();
}

int OpenForChild(const char* path) noexcept {
  return ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOCTTY, 0640);
}

Result<int> OpenForAppend(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOCTTY | O_CLOEXEC, 0640);
  if (fd < 0) {
    return Err(ErrnoError("open log file " + path, errno));
  }
  return fd;
}

std::string_view RotateMethodName(RotateResult::Method m) {
  switch (m) {
    case RotateResult::kNone:
      return "none";
    case RotateResult::kCollapse:
      return "collapse";
    case RotateResult::kCopyTruncate:
      return "copytruncate";
  }
  return "none";
}

Result<RotateResult> MaybeRotate(const std::string& log_path, uint64_t max_bytes, int keep,
                                 bool allow_collapse) {
  if (keep < 0) {
    return Err(Code::kInvalidArgument, "rotate {}: keep must be >= 0, got {}", log_path, keep);
  }
  // Fast path, taken by almost every periodic check: one stat(), no open or lock. (A copy left
  // by an interrupted rotation is installed by the next rotation that runs.)
  {
    struct stat quick {};
    if (::stat(log_path.c_str(), &quick) != 0) {
      if (errno == ENOENT) {
        return RotateResult{};
      }
      return Err(ErrnoError("stat " + log_path, errno));
    }
    if (static_cast<uint64_t>(quick.st_size) < max_bytes) {
      RotateResult none;
      none.live_bytes = static_cast<uint64_t>(quick.st_size);
      return none;
    }
  }
  Fd live(::open(log_path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY));
  if (!live.ok()) {
    if (errno == ENOENT) {
      return RotateResult{};
    }
    return Err(ErrnoError("open log file " + log_path, errno));
  }
  if (FlockRetry(live.get(), LOCK_EX) != 0) {
    return Err(ErrnoError("lock " + log_path, errno));
  }

  const std::string tmp = RotatedPath(log_path, 1) + ".tmp";
  // A previous rotation that died after cutting the live file but before installing its copy
  // left the copy in tmp: install it now so those bytes are not lost.
  if (keep > 0 && StatFile(tmp).ino != 0) {
    CB_TRY_VOID(ShiftAndInstall(log_path, keep, tmp));
  }

  struct stat st {};
  if (::fstat(live.get(), &st) != 0) {
    return Err(ErrnoError("stat " + log_path, errno));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  RotateResult res;
  res.live_bytes = size;
  if (size < max_bytes || size == 0) {
    return res;
  }

  uint64_t block = st.st_blksize > 0 ? static_cast<uint64_t>(st.st_blksize) : 4096;
  uint64_t cut = (size / block) * block;
  if (cut >= size && cut >= block) {
    cut -= block;  // collapse must leave at least one byte
  }

  Fd copy;
  if (keep > 0) {
    copy = Fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0640));
    if (!copy.ok()) {
      return Err(ErrnoError("create " + tmp, errno));
    }
  }

  bool collapsed = false;
  uint64_t moved = 0;
  if (allow_collapse && cut > 0) {
    if (copy.ok()) {
      CB_TRY(uint64_t n, CopyRange(live.get(), copy.get(), 0, cut, log_path, tmp));
      if (n != cut) {
        ::unlink(tmp.c_str());
        return Err(Code::kIo, "rotate {}: file shrank during the copy (another rotator?)",
                   log_path);
      }
    }
    if (::fallocate(live.get(), FALLOC_FL_COLLAPSE_RANGE, 0, static_cast<off_t>(cut)) == 0) {
      collapsed = true;
      moved = cut;
    } else if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENOSYS && errno != EPERM) {
      int e = errno;
      ::unlink(tmp.c_str());
      return Err(ErrnoError("fallocate(COLLAPSE_RANGE) " + log_path, e));
    }
    // Unsupported: the copy so far is kept and continued by copy-truncate below.
    if (!collapsed) {
      moved = cut;
    }
  }
  if (!collapsed) {
    // Copy-truncate: copy to EOF, then truncate at once. Bytes the child appends between the
    // last read and the ftruncate are lost (documented in the header and LOGGING.md).
    if (copy.ok()) {
      CB_TRY(uint64_t n, CopyRange(live.get(), copy.get(), moved, UINT64_MAX, log_path, tmp));
      moved += n;
    } else {
      moved = size;
    }
    if (::ftruncate(live.get(), 0) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      return Err(ErrnoError("truncate " + log_path, e));
    }
  }
  if (copy.ok()) {
    CB_TRY_VOID(ShiftAndInstall(log_path, keep, tmp));
  }
  if (::fstat(live.get(), &st) == 0) {
    res.live_bytes = static_cast<uint64_t>(st.st_size);
  }
  res.method = collapsed ? RotateResult::kCollapse : RotateResult::kCopyTruncate;
  res.moved_bytes = moved;
  return res;
}

namespace {

// Where a Tail ended, for a follower to continue from (read under the same lock).
struct TailEnd {
  ino_t live_ino = 0;      // 0: NAME.log did not exist
  uint64_t live_size = 0;  // bytes of NAME.log covered by the tail
  ino_t rot1_ino = 0;
  std::string partial;  // an unfinished last line held back (hold_partial only)
};

Result<std::vector<std::string>> TailImpl(const std::string& log_path, size_t n, size_t max_bytes,
                                          TailEnd* tail_end, bool hold_partial) {
  std::vector<std::string> lines;
  Fd live(::open(log_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!live.ok()) {
    if (errno == ENOENT) {
      if (tail_end != nullptr) {
        tail_end->rot1_ino = StatFile(RotatedPath(log_path, 1)).ino;
      }
      return lines;
    }
    return Err(ErrnoError("open log file " + log_path, errno));
  }
  if (FlockRetry(live.get(), LOCK_SH) != 0) {
    return Err(ErrnoError("lock " + log_path, errno));
  }
  if (tail_end != nullptr) {
    struct stat lst {};
    if (::fstat(live.get(), &lst) != 0) {
      return Err(ErrnoError("stat " + log_path, errno));
    }
    tail_end->live_ino = lst.st_ino;
    tail_end->live_size = static_cast<uint64_t>(lst.st_size);
    tail_end->rot1_ino = StatFile(RotatedPath(log_path, 1)).ino;
  }
  if (n == 0) {
    return lines;
  }

  // Reads backwards through NAME.log, NAME.log.1, ... into `acc` (which grows at the front)
  // until it holds more than n line ends, the byte limit is reached, or the files end.
  std::string acc;
  bool exhausted = true;  // read the whole stream from its beginning
  auto enough = [&]() {
    size_t nl = 0;
    // A '\n' at the very end of the stream closes the last line; it does not start one.
    size_t limit = acc.size();
    if (!acc.empty() && acc.back() == '\n') {
      --limit;
    }
    for (size_t i = 0; i < limit; ++i) {
      if (acc[i] == '\n' && ++nl >= n) {
        return true;
      }
    }
    return false;
  };
  for (int idx = 0;; ++idx) {
    std::string path = RotatedPath(log_path, idx);
    Fd own;
    int fd = live.get();
    if (idx > 0) {
      own = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
      if (!own.ok()) {
        if (errno == ENOENT) {
          break;
        }
        return Err(ErrnoError("open " + path, errno));
      }
      fd = own.get();
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      return Err(ErrnoError("stat " + path, errno));
    }
    uint64_t end = static_cast<uint64_t>(st.st_size);
    if (idx == 0 && tail_end != nullptr) {
      end = tail_end->live_size;  // exactly where the follower will continue
    }
    bool stop = false;
    while (end > 0) {
      uint64_t start = end > kChunk ? end - kChunk : 0;
      if (acc.size() + (end - start) > max_bytes) {
        start = end - std::min<uint64_t>(end - start, max_bytes - acc.size());
        stop = true;
      }
      std::string chunk;
      CB_TRY_VOID(PreadRange(fd, start, end, &chunk, path));
      acc.insert(0, chunk);
      end = start;
      if (stop || enough()) {
        stop = true;
        break;
      }
    }
    if (stop) {
      exhausted = false;
      break;
    }
  }
  if (acc.empty()) {
    return lines;
  }
  // Split; the first piece is partial unless we read from the stream's beginning.
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= acc.size()) {
    size_t nl = acc.find('\n', pos);
    if (nl == std::string::npos) {
      parts.emplace_back(acc.data() + pos, acc.size() - pos);
      break;
    }
    parts.emplace_back(acc.data() + pos, nl - pos);
    pos = nl + 1;
  }
  if (!parts.empty() && acc.back() == '\n') {
    parts.pop_back();  // the empty piece after the last '\n'
  }
  if (hold_partial && tail_end != nullptr && acc.back() != '\n' && !parts.empty()) {
    tail_end->partial = std::string(parts.back());
    parts.pop_back();
  }
  size_t first = 0;
  if (!exhausted && !parts.empty()) {
    first = 1;  // cut by the chunk boundary or the byte limit
  }
  if (parts.size() - first > n) {
    first = parts.size() - n;
  }
  for (size_t i = first; i < parts.size(); ++i) {
    lines.push_back(SanitizeUtf8(parts[i]));
  }
  return lines;
}

}  // namespace

Result<std::vector<std::string>> Tail(const std::string& log_path, size_t n, size_t max_bytes) {
  if (n == 0) {
    return std::vector<std::string>{};
  }
  return TailImpl(log_path, n, max_bytes, nullptr, false);
}

Result<TailAndFollower> TailThenFollow(const std::string& log_path, size_t n, size_t max_bytes,
                                       size_t max_line_bytes) {
  TailEnd end;
  CB_TRY(std::vector<std::string> lines, TailImpl(log_path, n, max_bytes, &end, true));
  TailAndFollower out;
  out.lines = std::move(lines);
  out.follower.reset(new LogFollower(log_path, max_line_bytes, LogFollower::Resume{}));
  LogFollower& f = *out.follower;
  f.started_ = true;
  f.live_ino_ = end.live_ino;
  f.offset_ = end.live_ino == 0 ? 0 : end.live_size;
  f.rot1_ino_ = end.rot1_ino;
  f.pending_ = std::move(end.partial);
  return out;
}

LogFollower::LogFollower(std::string log_path, size_t max_line_bytes, Resume /*unused*/)
    : path_(std::move(log_path)), max_line_bytes_(max_line_bytes == 0 ? 1 : max_line_bytes) {}

LogFollower::LogFollower(std::string log_path, size_t max_line_bytes)
    : path_(std::move(log_path)), max_line_bytes_(max_line_bytes == 0 ? 1 : max_line_bytes) {
  (void)Poll();  // positions at the current end
}

Result<void> LogFollower::ReadFrom(const std::string& file, uint64_t offset, uint64_t end) {
  if (end <= offset) {
    return Ok();
  }
  if (end - offset > kMaxFollowBytesPerPoll) {
    uint64_t skip = end - offset - kMaxFollowBytesPerPoll;
    if (!pending_.empty() && pending_.back() != '\n') {
      pending_.push_back('\n');
    }
    pending_ += "[cbagent: " + std::to_string(skip) + " bytes skipped, the reader fell behind]\n";
    offset += skip;
  }
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd.ok()) {
    if (errno == ENOENT) {
      return Ok();  // rotated away beyond `keep`: those bytes are gone
    }
    return Err(ErrnoError("open " + file, errno));
  }
  return PreadRange(fd.get(), offset, end, &pending_, file);
}

void LogFollower::Emit(std::vector<std::string>* out) {
  size_t pos = 0;
  for (;;) {
    size_t nl = pending_.find('\n', pos);
    if (nl == std::string::npos) {
      break;
    }
    out->push_back(SanitizeUtf8(std::string_view(pending_).substr(pos, nl - pos)));
    pos = nl + 1;
  }
  pending_.erase(0, pos);
  while (pending_.size() >= max_line_bytes_) {
    out->push_back(SanitizeUtf8(std::string_view(pending_).substr(0, max_line_bytes_)));
    pending_.erase(0, max_line_bytes_);
  }
}

Result<std::vector<std::string>> LogFollower::Poll() {
  std::vector<std::string> out;
  Fd live(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!live.ok()) {
    if (errno != ENOENT) {
      return Err(ErrnoError("open log file " + path_, errno));
    }
    // Not there (yet, or removed): the next file to appear is read from its start.
    started_ = true;
    live_ino_ = 0;
    offset_ = 0;
    rot1_ino_ = StatFile(RotatedPath(path_, 1)).ino;
    return out;
  }
  if (FlockRetry(live.get(), LOCK_SH) != 0) {
    return Err(ErrnoError("lock " + path_, errno));
  }
  struct stat st {};
  if (::fstat(live.get(), &st) != 0) {
    return Err(ErrnoError("stat " + path_, errno));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const ino_t r1 = StatFile(RotatedPath(path_, 1)).ino;

  if (!started_) {
    started_ = true;
    live_ino_ = st.st_ino;
    offset_ = size;
    rot1_ino_ = r1;
    return out;
  }
  if (st.st_ino != live_ino_) {
    // A new file (created after being absent, or replaced): read it from the start.
    live_ino_ = st.st_ino;
    offset_ = 0;
  } else if (r1 != 0 && r1 != rot1_ino_) {
    // One or more rotations. The old NAME.log.1 is now NAME.log.(k+1), so the k newest
    // rotated files hold, oldest first, the prefixes cut from the live file; our offset
    // counts into that stream.
    int k = 0;
    if (rot1_ino_ != 0) {
      for (int i = 2; i <= 1000; ++i) {
        FileId id = StatFile(RotatedPath(path_, i));
        if (id.ino == 0) {
          break;
        }
        if (id.ino == rot1_ino_) {
          k = i - 1;
          break;
        }
      }
    }
    if (k == 0) {  // no rotated file before, or it was deleted: all present ones are new
      while (StatFile(RotatedPath(path_, k + 1)).ino != 0) {
        ++k;
      }
    }
    uint64_t pos = offset_;
    for (int i = k; i >= 1; --i) {
      std::string f = RotatedPath(path_, i);
      uint64_t sz = StatFile(f).size;
      if (pos < sz) {
        CB_TRY_VOID(ReadFrom(f, pos, sz));
        pos = 0;
      } else {
        pos -= sz;
      }
    }
    offset_ = pos;
    if (offset_ > size) {
      offset_ = 0;  // bytes lost by copy-truncate: resume at the start
    }
  } else if (size < offset_) {
    offset_ = 0;  // truncated by someone else
  }
  rot1_ino_ = r1;
  if (size > offset_) {
    CB_TRY_VOID(ReadFrom(path_, offset_, size));
    offset_ = size;
  }
  Emit(&out);
  return out;
}

}  // namespace cb
