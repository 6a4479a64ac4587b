// cbctld: the control plane daemon. Thin: parses flags, calls controlplane/daemon.h.
#include <csignal>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "controlplane/daemon.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cbctld: the cbctl control plane daemon (desired state, API, reconciliation)"};
  app.require_subcommand(1);
  std::string state_dir;

  auto* init = app.add_subcommand("init", "Create the state directory and the first admin token");
  init->add_option("--state-dir", state_dir, "State directory")->required();

  cb::cp::ServeOptions so;
  double period = 10;
  auto* serve = app.add_subcommand("serve", "Serve the API and reconcile the hosts");
  serve->add_option("--state-dir", so.state_dir, "State directory (from cbctld init)")->required();
  serve->add_option("--listen", so.api.listen, "HOST:PORT; port 0 picks a free port (written to STATE_DIR/listen.addr)")
      ->capture_default_str();
  serve->add_option("--tls-cert", so.api.tls_cert, "TLS certificate (PEM)");
  serve->add_option("--tls-key", so.api.tls_key, "TLS private key (PEM)");
  serve->add_flag("--insecure", so.api.insecure, "Allow plain HTTP on a non-loopback address");
  serve->add_option("--reconcile-interval", period, "Seconds between periodic reconcile passes")
      ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  serve->add_option("--max-followers", so.api.max_followers, "Concurrent `logs -f` streams")
      ->capture_default_str()->check(CLI::Range(1, 1000));

  double maintain_interval = 3600;
  serve->add_option("--maintain-interval", maintain_interval,
                    "Seconds between scheduled `db maintain` passes over the spec's database.partitioning tables "
                    "(the first at start)")
      ->capture_default_str()->check(CLI::Range(1.0, 7.0 * 24 * 3600));
  auto* version = app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 64;
  }

  if (version->parsed()) {
    std::printf("cbctld %s\n", std::string(cb::cp::kCbctldVersion).c_str());
    return 0;
  }
  if (init->parsed()) {
    auto r = cb::cp::InitStateDir(state_dir, *cb::RealClock::Get());
    if (!r) {
      std::fprintf(stderr, "cbctld init: %s\n", r.error().message.c_str());
      return 1;
    }
    std::printf("Initialised %s.\nAdmin token (shown once; also in %s/admin.token, mode 0600):\n%s\n",
                state_dir.c_str(), state_dir.c_str(), r->c_str());
    return 0;
  }
  so.reconcile_period = cb::Seconds(period);
  so.maintain_interval = cb::Seconds(maintain_interval);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  auto r = cb::cp::Serve(so, g_stop, *cb::RealClock::Get());
  if (!r) {
    cb::cp::LogLine("error: " + r.error().message);
    return r.error().code == cb::Code::kInvalidArgument ? 64 : 1;
  }
  return 0;
}
