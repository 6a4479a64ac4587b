// The command table. See cli/command.h. Order here is the order of help, completion and man.
#include "cli/command.h"
#include "cli/handlers.h"
#include "cli/output.h"

namespace cb::cli {

const Flag kOutputFlag{.kind = FlagKind::kValue,
                       .names = "-o,--output",
                       .key = "output",
                       .help = "Output format",
                       .value_name = "FORMAT",
                       .default_value = "table",
                       .choices = kFormatChoices,
                       .complete = Complete::kChoices};

const Flag kSpecFileFlag{.kind = FlagKind::kValue,
                         .names = "-f,--file",
                         .key = "file",
                         .help = "The fleet spec (YAML or JSON; - for standard input)",
                         .value_name = "FILE",
                         .required = true,
                         .complete = Complete::kFile};

namespace {

const Flag kGlobalFlags[] = {
    {.kind = FlagKind::kValue,
     .names = "--server",
     .key = "server",
     .help = "cbctld address (default: $CBCTL_SERVER, then server: in "
             "~/.config/cbctl/config.yaml, then http://127.0.0.1:7390)",
     .value_name = "URL"},
    {.kind = FlagKind::kValue,
     .names = "--token-file",
     .key = "token-file",
     .help = "File holding the API token (default: $CBCTL_TOKEN, then token_file: or token: in "
             "the config file)",
     .value_name = "FILE",
     .complete = Complete::kFile},
    {.kind = FlagKind::kBool,
     .names = "--no-color",
     .key = "no-color",
     .help = "Never colour the output (colour is used only on a terminal and never when "
             "NO_COLOR is set)"},
};

std::vector<Command> BuildTable() {
  std::vector<Command> t;
  // ---- Daemon-less commands ----
  t.push_back({.path = "config", .summary = "Work with fleet spec files locally"});
  t.push_back(
      {.path = "config validate",
       .summary = "Check a fleet spec and list every problem",
       .handler = CmdConfigValidate,
       .flags = {{.kind = FlagKind::kPositional,
                  .names = "file",
                  .key = "file",
                  .help = "The fleet spec (YAML or JSON; - for standard input)",
                  .value_name = "FILE",
                  .required = true,
                  .complete = Complete::kFile},
                 kOutputFlag},
       .details = "Prints \"valid\" and exits 0, or prints every problem as "
                  "FILE:LINE:COLUMN: KEY.PATH: MESSAGE and exits 1. Warnings (a spec that is "
                  "valid but probably not what was meant) go to standard error. With -o json "
                  "the output is a list of {file, line, column, path, message, expected, "
                  "found}, empty when the spec is valid."});
  t.push_back({.path = "version",
               .summary = "Print the version of cbctl",
               .handler = CmdVersion,
               .flags = {kOutputFlag}});
  t.push_back({.path = "completion",
               .summary = "Print a shell completion script",
               .handler = CmdCompletion,
               .flags = {{.kind = FlagKind::kPositional,
                          .names = "shell",
                          .key = "shell",
                          .help = "The shell",
                          .value_name = "SHELL",
                          .choices = "bash zsh fish",
                          .required = true,
                          .complete = Complete::kChoices}},
               .details = "bash: source <(cbctl completion bash), or save it as "
                          "/usr/share/bash-completion/completions/cbctl. zsh: save it as _cbctl "
                          "in a directory of $fpath. fish: save it as "
                          "~/.config/fish/completions/cbctl.fish."});
  t.push_back({.path = "man",
               .summary = "Print the manual page (roff)",
               .handler = CmdMan,
               .details = "Read it with: cbctl man | man -l -"});
  return t;
}

}  // namespace

std::span<const Command> CommandTable() {
  static const std::vector<Command> table = BuildTable();
  return table;
}

std::span<const Flag> GlobalFlags() { return kGlobalFlags; }

const Command* FindCommand(std::string_view path) {
  for (const auto& c : CommandTable()) {
    if (c.path == path) return &c;
  }
  return nullptr;
}

std::vector<const Command*> Children(std::string_view path) {
  std::vector<const Command*> out;
  for (const auto& c : CommandTable()) {
    std::string_view p = c.path;
    size_t cut = p.rfind(' ');
    std::string_view parent = cut == std::string_view::npos ? std::string_view() : p.substr(0, cut);
    if (parent == path) out.push_back(&c);
  }
  return out;
}

}  // namespace cb::cli
