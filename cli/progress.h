// A progress display for requests that may take more than a second (apply, plan): nothing
// for the first second; then, on a terminal, a spinner with the elapsed time on stderr, erased
// when done; elsewhere one plain line ("cbctl: applying… (still waiting for cbctld)").
// cbctld's API has no operation ids yet, so there is no percentage to show.
// Thread-safety: one Progress per operation, created and destroyed on the same thread; its
// own thread writes only to `err`, which the caller must not use until Done().
#pragma once

#include <condition_variable>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>

namespace cb::cli {

class Progress {
 public:
  Progress(std::ostream& err, bool tty, std::string label, double delay_seconds = 1.0);
  ~Progress();
  void Done();  // stops and erases the spinner; idempotent

 private:
  void Loop();
  std::ostream& err_;
  bool tty_;
  std::string label_;
  double delay_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool shown_ = false;
  std::thread thread_;
};

}  // namespace cb::cli
