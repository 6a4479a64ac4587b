#include "cli/progress.h"

#include <chrono>
#include <cstdio>

namespace cb::cli {

Progress::Progress(std::ostream& err, bool tty, std::string label, double delay_seconds)
    : err_(err), tty_(tty), label_(std::move(label)), delay_(delay_seconds) {
  thread_ = std::thread([this] { Loop(); });
}

Progress::~Progress() { Done(); }

void Progress::Done() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (done_ && !thread_.joinable()) return;
    done_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (shown_ && tty_) err_ << "\r\x1b[K" << std::flush;
}

void Progress::Loop() {
  using namespace std::chrono;
  auto start = steady_clock::now();
  std::unique_lock<std::mutex> l(mu_);
  if (cv_.wait_for(l, duration<double>(delay_), [this] { return done_; })) return;
  shown_ = true;
  if (!tty_) {
    err_ << "cbctl: " << label_ << "… (still waiting for cbctld)\n" << std::flush;
    return;
  }
  static const char* kFrames[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
  for (int i = 0; !done_; ++i) {
    double secs = duration<double>(steady_clock::now() - start).count();
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0fs", secs);
    err_ << "\r\x1b[K" << kFrames[i % 10] << " " << label_ << "… " << buf << std::flush;
    cv_.wait_for(l, milliseconds(100), [this] { return done_; });
  }
}

}  // namespace cb::cli
