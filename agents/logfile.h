// Per-service log capture: the log file IS the child's stdout and stderr.
//
// Design (the trade-off is written out in agents/LOGGING.md):
//   - The launcher opens STATE_DIR/logs/NAME.log in the child, between fork and exec, with
//     OpenForChild() (O_WRONLY|O_CREAT|O_APPEND, no O_CLOEXEC) and dup2s it onto fds 1 and 2.
//     No pipe, no reader: a service's output never depends on the agent being alive (no
//     SIGPIPE, no full pipe blocking the child), output keeps landing in the file while the
//     agent is dead and after a new agent starts, and there is no extra process per service
//     (200 services cost the agent nothing but one stat() per rotation check).
//   - The agent rotates by size with MaybeRotate(): the prefix of NAME.log is copied to
//     NAME.log.1 (older copies shift .1 -> .2 ... up to `keep`), then removed from the live
//     file in place with fallocate(FALLOC_FL_COLLAPSE_RANGE) on a block-aligned prefix: the
//     child's O_APPEND writes during the copy stay, NO BYTES ARE LOST. The price: the cut is
//     at a filesystem block boundary, not a line boundary, so the last line of NAME.log.1 may
//     continue at the start of NAME.log (Tail and LogFollower read the files as one stream,
//     so they show whole lines). Where the filesystem cannot collapse (tmpfs, btrfs, NFS, a
//     file smaller than one block) it falls back to copy-then-truncate: bytes the child writes
//     between the end of the copy and the truncate are LOST (a window of microseconds to
//     milliseconds; RotateResult reports which method ran).
//   - While no agent is running nothing rotates: the file grows until an agent is back.
//   - Readers (Tail, LogFollower) and the rotator take flock() on the live file (shared /
//     exclusive), so a reader always sees a state before or after a whole rotation.
//
// Path layout: STATE_DIR/logs/NAME.log (live), NAME.log.1 (newest rotated) ... NAME.log.KEEP.
//
// Thread-safety: free functions are safe to call from any thread; a LogFollower is used by one
// thread at a time. Rotation of one file must be driven by one agent (the flock serialises two
// rotators, so a second agent by mistake is harmless but wasteful).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace cb {

// Defaults used by the agent (per service).
inline constexpr uint64_t kDefaultLogMaxBytes = 10ull << 20;  // rotate when NAME.log >= 10 MiB
inline constexpr int kDefaultLogKeep = 3;                     // NAME.log.1 .. NAME.log.3

// STATE_DIR/logs
std::string LogDir(const std::string& state_dir);
// STATE_DIR/logs/NAME.log
std::string LogPath(const std::string& state_dir, const std::string& name);
// "<log_path>.<index>" for index >= 1; index 0 is log_path itself.
std::string RotatedPath(const std::string& log_path, int index);

// Creates STATE_DIR/logs (mode 0750) when missing. Failure: kIo/kPermissionDenied naming the
// directory.
Result<void> EnsureLogDir(const std::string& state_dir);

// For the launcher, in the child between fork and exec: opens `path` for appending
// (O_WRONLY|O_CREAT|O_APPEND|O_NOCTTY, mode 0640, deliberately without O_CLOEXEC). Returns the
// fd, or -1 with errno set. Async-signal-safe (only open(2)); allocates nothing.
int OpenForChild(const char* path) noexcept;

// Same, in a normal context, with O_CLOEXEC (for a parent that opens before fork and dup2s in
// the child: dup2 clears FD_CLOEXEC on the target). Failure names the path.
Result<int> OpenForAppend(const std::string& path);

struct RotateResult {
  enum Method { kNone, kCollapse, kCopyTruncate };
  Method method = kNone;     // kNone: below max_bytes (or the file does not exist)
  uint64_t moved_bytes = 0;  // bytes now in NAME.log.1 and gone from NAME.log
  uint64_t live_bytes = 0;   // size of NAME.log after rotating (or now, with kNone)
};
std::string_view RotateMethodName(RotateResult::Method m);  // "none", "collapse", "copytruncate"

// Rotates `log_path` when its size is >= max_bytes (see the header comment). `keep` >= 1 is
// the number of rotated files kept (older ones are deleted); keep == 0 drops the prefix without
// keeping a copy. A missing log file is not an error (kNone). `allow_collapse = false` forces
// the copy-truncate method (for tests and for filesystems that lie about support).
// Failure: kIo naming the file and the syscall; the live file is left intact on failure.
// Cost below the threshold: one stat(), no open or lock (the agent calls it per service every
// few seconds). A copy left by a rotation interrupted by the agent's death
// (NAME.log.1.tmp) is installed, in order, by the next rotation that runs.
Result<RotateResult> MaybeRotate(const std::string& log_path, uint64_t max_bytes, int keep,
                                 bool allow_collapse = true);

// The last `n` lines of the stream NAME.log.KEEP .. NAME.log.1, NAME.log (reading into the
// rotated files only as far as needed), oldest first, without their '\n'. A final line that
// has no '\n' yet is included. At most `max_bytes` are read (older lines beyond it are
// dropped; a line cut by the limit is dropped). A missing log file gives an empty list.
// Failure: kIo naming the file.
Result<std::vector<std::string>> Tail(const std::string& log_path, size_t n,
                                      size_t max_bytes = 1u << 20);

// Follows NAME.log for `logs -f`: Poll() returns the complete lines written since the last
// call (or since construction: it starts at the current end). It keeps its place across
// rotations (collapse or copy-truncate, even several between two polls, as long as the
// rotated files it needs are still kept), across a truncation by someone else (starts over
// at 0) and across the file being replaced (new inode: starts at 0). A partial last line is
// held back until its '\n' arrives, or emitted when it exceeds max_line_bytes.
// Poll() is cheap when nothing changed (two stat calls). The file may not exist yet.
class LogFollower {
 public:
  explicit LogFollower(std::string log_path, size_t max_line_bytes = 64u << 10);
  // Returns new complete lines (possibly none). Failure: kIo naming the file.
  Result<std::vector<std::string>> Poll();
  const std::string& path() const { return path_; }

 private:
  friend Result<struct TailAndFollower> TailThenFollow(const std::string&, size_t, size_t, size_t);
  struct Resume {};
  LogFollower(std::string log_path, size_t max_line_bytes, Resume);
  Result<void> ReadFrom(const std::string& file, uint64_t offset, uint64_t end);
  void Emit(std::vector<std::string>* out);

  std::string path_;
  size_t max_line_bytes_;
  bool started_ = false;
  ino_t live_ino_ = 0;   // inode of NAME.log at the last poll (0: did not exist)
  uint64_t offset_ = 0;  // bytes of NAME.log consumed
  ino_t rot1_ino_ = 0;   // inode of NAME.log.1 at the last poll (0: did not exist)
  std::string pending_;  // bytes read, not yet split into lines
};

// `logs --tail N -f`: the last n lines (as Tail, except that an unfinished last line is held
// back) and a follower that continues exactly where they end, read under one lock: no line
// is shown twice or missed between the tail and the first Poll(); the held-back line comes
// whole from the follower once its '\n' arrives. Failure: as Tail.
struct TailAndFollower {
  std::vector<std::string> lines;
  std::unique_ptr<LogFollower> follower;
};
Result<TailAndFollower> TailThenFollow(const std::string& log_path, size_t n,
                                       size_t max_bytes = 1u << 20,
                                       size_t max_line_bytes = 64u << 10);

}  // namespace cb
