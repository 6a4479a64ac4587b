#include "cli/app.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <cstring>
#include <iostream>
#include <map>

#include "cli/exit_codes.h"
#include "cli/output.h"
#include "core/problem.h"
#include "core/version.h"

namespace cb::cli {

std::vector<std::string_view> PathWords(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t sp = path.find(' ', start);
    if (sp == std::string_view::npos) sp = path.size();
    if (sp > start) out.push_back(path.substr(start, sp - start));
    start = sp + 1;
  }
  return out;
}

bool IsGroup(const Command& c) { return !Children(c.path).empty(); }

int PrintError(Invocation& inv, std::string_view message, int exit_code) {
  inv.io.err << Paint("cbctl: error: ", Color::kRed, inv.color_err) << message;
  if (message.empty() || message.back() != '\n') inv.io.err << "\n";
  return exit_code;
}

int PrintUsageError(Invocation& inv, std::string_view message) {
  PrintError(inv, message, kExitUsage);
  inv.io.err << "Run 'cbctl " << inv.command.path << " --help' for usage.\n";
  return kExitUsage;
}

namespace {

std::vector<std::string> SplitChoices(std::string_view s) {
  std::vector<std::string> out;
  for (auto w : PathWords(s)) out.emplace_back(w);
  return out;
}

void AddFlag(CLI::App* app, const Flag& f, Args& args) {
  std::string key(f.key);
  CLI::Option* opt = nullptr;
  std::string help(f.help);
  switch (f.kind) {
    case FlagKind::kBool:
      opt = app->add_flag(std::string(f.names), help);
      break;
    case FlagKind::kValue:
    case FlagKind::kPositional:
      if (!f.default_value.empty()) args.values[key] = std::string(f.default_value);
      opt = app->add_option(std::string(f.names), args.values[key], help);
      if (!f.default_value.empty()) opt->default_str(std::string(f.default_value));
      break;
    case FlagKind::kPositionalList:
      opt = app->add_option(std::string(f.names), args.lists[key], help);
      break;
  }
  if (!f.value_name.empty() && f.kind != FlagKind::kBool) opt->type_name(std::string(f.value_name));
  if (f.required) opt->required();
  if (!f.choices.empty()) opt->check(CLI::IsMember(SplitChoices(f.choices)));
}

struct Registered {
  const Command* command;
  CLI::App* app;
};

bool FlagTakesValue(const std::vector<Flag>& flags, std::string_view word) {
  for (const auto& f : flags) {
    if (f.kind != FlagKind::kValue) continue;
    std::string_view names = f.names;
    while (!names.empty()) {
      size_t comma = names.find(',');
      if (names.substr(0, comma) == word) return true;
      if (comma == std::string_view::npos) break;
      names.remove_prefix(comma + 1);
    }
  }
  return false;
}

// The command path argv selects, as far as it is made of known words. Sets *unknown to the
// first word that is not a subcommand of a group.
std::string ScanPath(int argc, const char* const* argv, std::string* unknown) {
  std::vector<Flag> globals(GlobalFlags().begin(), GlobalFlags().end());
  std::string path;
  for (int i = 1; i < argc; ++i) {
    std::string_view w = argv[i];
    if (w == "--") break;
    const Command* cur = path.empty() ? nullptr : FindCommand(path);
    if (w.starts_with("-")) {
      if (w.find('=') != std::string_view::npos) continue;
      if (FlagTakesValue(globals, w) || (cur && FlagTakesValue(cur->flags, w))) ++i;
      continue;
    }
    if (cur != nullptr && !IsGroup(*cur)) break;  // a leaf: the rest are arguments
    bool found = false;
    for (const auto* c : Children(path)) {
      if (c->path.substr(
              c->path.rfind(' ') == std::string_view::npos ? 0 : c->path.rfind(' ') + 1) == w) {
        path = std::string(c->path);
        found = true;
        break;
      }
    }
    if (!found) {
      *unknown = std::string(w);
      break;
    }
  }
  return path;
}

// Runs the command in a fuller binary beside this executable, with the same arguments:
// cbctl-api for the commands that talk to cbctld (no libpq/libpqxx to load), cbctl-full for
// the rest (db commands). See cli/CMakeLists.txt.
int ExecFull(int argc, const char* const* argv, Io& io, bool needs_daemon) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = ".";
  if (n > 0) {
    self[n] = '\0';
    dir = self;
    dir.resize(dir.rfind('/') == std::string::npos ? 0 : dir.rfind('/'));
  }
  std::string full = dir + (needs_daemon ? "/cbctl-api" : "/cbctl-full");
  io.out.flush();
  io.err.flush();
  std::vector<char*> av;
  av.push_back(const_cast<char*>(full.c_str()));
  for (int i = 1; i < argc; ++i) av.push_back(const_cast<char*>(argv[i]));
  av.push_back(nullptr);
  execv(full.c_str(), av.data());
  int err = errno;
  io.err << "cbctl: error: this command is run by " << full
         << ", which cannot be started: " << std::strerror(err)
         << " (reinstall cbctl with cbctl-api and cbctl-full beside it)\n";
  return kExitFailure;
}

}  // namespace

int Run(int argc, const char* const* argv, Io& io) {
  GlobalOptions global;
  CLI::App root{"cbctl: the operator toolkit for a self-hosted Codebolt fleet", "cbctl"};
  root.footer(
      "Exit codes: 0 ok, 1 failed, 2 changes (--detailed-exitcode), 64 usage, 69 daemon "
      "unreachable, 77 not allowed.\nRun 'cbctl COMMAND --help' for a command's options; "
      "'cbctl man | man -l -' for the manual.");
  root.set_version_flag("--version", "cbctl " + std::string(kVersion));
  root.set_help_all_flag("--help-all", "Print help for every command");
  root.require_subcommand(1);
  for (const auto& f : GlobalFlags()) {
    CLI::Option* opt = nullptr;
    if (f.key == "server") opt = root.add_option("--server", global.server, std::string(f.help));
    if (f.key == "token-file")
      opt = root.add_option("--token-file", global.token_file, std::string(f.help));
    if (f.key == "no-color")
      opt = root.add_flag("--no-color", global.no_color, std::string(f.help));
    if (opt && !f.value_name.empty()) opt->type_name(std::string(f.value_name));
  }

  // Every command's parsed values; std::map keeps references stable for CLI11's bindings.
  std::map<const Command*, Args> args;
  std::map<std::string, CLI::App*> apps;  // path -> app
  apps[""] = &root;
  std::vector<Registered> registered;
  for (const auto& cmd : CommandTable()) {
    auto words = PathWords(cmd.path);
    std::string parent;
    for (size_t i = 0; i + 1 < words.size(); ++i) parent += (i ? " " : "") + std::string(words[i]);
    CLI::App* parent_app = apps.count(parent) ? apps[parent] : &root;
    std::string summary(cmd.summary);
    if (cmd.needs_daemon) summary += " [cbctld]";
    CLI::App* sub = parent_app->add_subcommand(std::string(words.back()), summary);
    sub->fallthrough();
    if (cmd.hidden) sub->group("");
    std::string footer(cmd.details);
    if (cmd.needs_daemon) {
      if (!footer.empty()) footer += "\n";
      footer += "Talks to cbctld (--server, $CBCTL_SERVER or the config file).";
    }
    if (!footer.empty()) sub->footer(footer);
    if (IsGroup(cmd)) sub->require_subcommand(1);
    Args& a = args[&cmd];
    for (const auto& f : cmd.flags) AddFlag(sub, f, a);
    apps[std::string(cmd.path)] = sub;
    registered.push_back({&cmd, sub});
  }

  // Unknown commands and bare groups get a clear message before CLI11 sees them.
  std::string unknown;
  std::string scanned = ScanPath(argc, argv, &unknown);
  bool wants_help = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view w = argv[i];
    wants_help = wants_help || w == "-h" || w == "--help" || w == "--help-all" || w == "--version";
  }
  bool color_err = ShouldColor(io.err_tty, false);
  if (!unknown.empty() && !wants_help) {
    std::vector<std::string_view> names;
    for (const auto* c : Children(scanned)) {
      if (!c->hidden) names.push_back(c->path.substr(scanned.empty() ? 0 : scanned.size() + 1));
    }
    std::string msg = "unknown command '" + (scanned.empty() ? "" : scanned + " ") + unknown + "'";
    std::string guess = DidYouMean(unknown, names);
    if (!guess.empty())
      msg += " (did you mean '" + (scanned.empty() ? "" : scanned + " ") + guess + "'?)";
    io.err << Paint("cbctl: error: ", Color::kRed, color_err) << msg << "\n";
    io.err << "Run 'cbctl " << (scanned.empty() ? "" : scanned + " ")
           << "--help' for the commands.\n";
    return kExitUsage;
  }
  const Command* scanned_cmd = scanned.empty() ? nullptr : FindCommand(scanned);
  if ((scanned_cmd == nullptr || IsGroup(*scanned_cmd)) && !wants_help) {
    io.err << apps[scanned]->help();
    return kExitUsage;
  }

  try {
    root.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return root.exit(e, io.out, io.err);
  } catch (const CLI::CallForAllHelp& e) {
    return root.exit(e, io.out, io.err);
  } catch (const CLI::CallForVersion& e) {
    return root.exit(e, io.out, io.err);
  } catch (const CLI::ParseError& e) {
    io.err << Paint("cbctl: error: ", Color::kRed, color_err) << e.what() << "\n";
    io.err << "Run 'cbctl " << (scanned.empty() ? "" : scanned + " ") << "--help' for usage.\n";
    return kExitUsage;
  }

  // The deepest selected command.
  const Command* chosen = nullptr;
  CLI::App* chosen_app = nullptr;
  for (const auto& r : registered) {
    if (r.app->parsed() && (chosen == nullptr || r.command->path.size() > chosen->path.size())) {
      chosen = r.command;
      chosen_app = r.app;
    }
  }
  if (chosen == nullptr || IsGroup(*chosen)) {
    io.err << (chosen_app ? chosen_app->help() : root.help());
    return kExitUsage;
  }
  if (chosen->handler == nullptr) return ExecFull(argc, argv, io, chosen->needs_daemon);
  Args& a = args[chosen];
  for (const auto& f : chosen->flags) {
    std::string first(f.names.substr(0, f.names.find(',')));
    CLI::Option* opt = chosen_app->get_option_no_throw(first);
    if (opt != nullptr && opt->count() > 0) a.given.insert(std::string(f.key));
  }
  Invocation inv{*chosen,
                 a,
                 global,
                 io,
                 ShouldColor(io.out_tty, global.no_color),
                 ShouldColor(io.err_tty, global.no_color)};
  try {
    return chosen->handler(inv);
  } catch (const std::exception& e) {
    // A bug: handlers return errors as values. Say where, do not crash with a trace.
    return PrintError(
        inv,
        std::string("internal error in 'cbctl ") + std::string(chosen->path) + "': " + e.what(),
        kExitFailure);
  }
}

}  // namespace cb::cli
