// The command table of cbctl (ninja's kTools style): one static list of
// {path, summary, handler, needs_daemon, flags, details} that drives everything about a
// command — CLI11 registration and help (cli/app.cc), `cbctl completion bash|zsh|fish`
// (cli/gen_completion.cc) and `cbctl man` (cli/gen_man.cc). Adding a command is adding a row
// to kCommands in cli/command_table.cc and writing its handler; nothing else.
//
// A row with children is a group ("svc", "token"): it only holds subcommands and has no
// handler. Handlers return an exit code from cli/exit_codes.h. A leaf whose handler is null in
// this binary is run by `cbctl-api` or `cbctl-full` (see cli/handlers.h).
// Thread-safety: the table is immutable after first use; an Invocation is one thread's.
#pragma once

#include <iosfwd>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cb::cli {

enum class FlagKind {
  kBool,            // --yes
  kValue,           // --file FILE
  kPositional,      // FILE
  kPositionalList,  // FILE... (rest of the line)
};

// How a shell completes a flag's value or a positional argument.
enum class Complete {
  kNone,
  kFile,     // a path
  kChoices,  // one of Flag::choices
  kService,  // a service address (NAME or NAME@HOST) from the daemon
};

struct Flag {
  FlagKind kind = FlagKind::kBool;
  std::string_view names;  // CLI11 spelling: "-f,--file"; positional: "file"
  std::string_view key;    // the name handlers look it up by: "file"
  std::string_view help;
  std::string_view value_name;     // "FILE" (shown in help, man and completion)
  std::string_view default_value;  // "" = none
  std::string_view choices;        // space-separated allowed values, checked by the parser
  bool required = false;
  Complete complete = Complete::kNone;
};

// What the parser found for one command.
struct Args {
  std::map<std::string, std::string> values;              // by key (defaults filled)
  std::map<std::string, std::vector<std::string>> lists;  // kPositionalList
  std::set<std::string> given;                            // keys present on the command line
  bool Has(const std::string& key) const { return given.count(key) > 0; }
  bool Flag(const std::string& key) const { return Has(key); }
  std::string Get(const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? std::string() : it->second;
  }
};

// Options of every command (given before or after the subcommand).
struct GlobalOptions {
  std::string server;      // --server URL
  std::string token_file;  // --token-file FILE
  bool no_color = false;   // --no-color
};

// The process's streams and what they are connected to (tests pass string streams).
struct Io {
  std::ostream& out;
  std::ostream& err;
  std::istream& in;
  bool out_tty = false;
  bool err_tty = false;
  bool in_tty = false;
};

struct Command;

struct Invocation {
  const Command& command;
  const Args& args;
  const GlobalOptions& global;
  Io& io;
  bool color_out = false;  // colour on stdout (ShouldColor)
  bool color_err = false;  // colour on stderr
};

using Handler = int (*)(Invocation&);

struct Command {
  std::string_view path;      // "svc start"; words separated by one space
  std::string_view summary;   // one line, no final period
  Handler handler = nullptr;  // null: a group, or a heavy handler not linked (cli/handlers.h)
  bool needs_daemon = false;  // talks to cbctld (shown in help and man)
  std::vector<Flag> flags;
  std::string_view details;  // paragraphs for --help and the man page; may be empty
  bool hidden = false;       // left out of help, completion and man (internal helpers)
};

// The whole table, groups included, in display order.
std::span<const Command> CommandTable();
// The global options, as flags (for help, completion and man).
std::span<const Flag> GlobalFlags();
// The row for a path, or nullptr.
const Command* FindCommand(std::string_view path);
// The direct children of a path ("" = top level), in table order.
std::vector<const Command*> Children(std::string_view path);
// A group only holds subcommands ("svc", "token").
bool IsGroup(const Command& c);

// Common flags, reused by many rows.
extern const Flag kOutputFlag;    // -o, --output table|json|yaml
extern const Flag kSpecFileFlag;  // -f, --file FILE (required)

// Errors and usage, printed the same way everywhere: "cbctl: error: ..." on stderr.
int PrintError(Invocation& inv, std::string_view message, int exit_code);
int PrintUsageError(Invocation& inv, std::string_view message);  // exit 64

}  // namespace cb::cli
