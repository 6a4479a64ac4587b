// Commands that need no daemon: config validate, version, completion, man.
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/exit_codes.h"
#include "cli/generate.h"
#include "cli/handlers.h"
#include "cli/output.h"
#include "core/spec.h"
#include "core/version.h"

namespace cb::cli {

int CmdConfigValidate(Invocation& inv) {
  auto format = ParseFormat(inv.args.Get("output"));
  if (!format) return PrintUsageError(inv, format.error().message);
  std::string file = inv.args.Get("file");
  SpecLoad load;
  if (file == "-") {
    std::string text((std::istreambuf_iterator<char>(inv.io.in)), std::istreambuf_iterator<char>());
    load = ParseFleetSpec(text, "<stdin>");
  } else {
    load = LoadFleetSpec(file);
  }
  bool c = inv.color_err;
  for (const auto& w : load.warnings)
    inv.io.err << Paint("warning: ", Color::kYellow, c) << FormatProblem(w) << "\n";
  if (*format != Format::kTable) {
    PrintStructured(inv.io.out, nlohmann::json(load.errors), *format);
    return load.ok() ? kExitOk : kExitFailure;
  }
  if (load.ok()) {
    inv.io.out << Paint("valid", Color::kGreen, inv.color_out) << "\n";
    return kExitOk;
  }
  for (const auto& p : load.errors) {
    inv.io.out << Paint(FormatProblem(p), Color::kNone, inv.color_out) << "\n";
  }
  size_t n = load.errors.size();
  inv.io.err << Paint(std::to_string(n) + (n == 1 ? " problem" : " problems"), Color::kRed, c)
             << " in " << (file == "-" ? "<stdin>" : file) << "\n";
  return kExitFailure;
}

int CmdVersion(Invocation& inv) {
  auto format = ParseFormat(inv.args.Get("output"));
  if (!format) return PrintUsageError(inv, format.error().message);
  if (*format == Format::kTable) {
    inv.io.out << "cbctl " << kVersion << "\n";
    return kExitOk;
  }
  nlohmann::json j = {{"client", "cbctl"}, {"version", std::string(kVersion)}, {"api", "v1"}};
  PrintStructured(inv.io.out, j, *format);
  return kExitOk;
}

int CmdCompletion(Invocation& inv) {
  auto script = CompletionScript(inv.args.Get("shell"));
  if (!script) return PrintUsageError(inv, script.error().message);
  inv.io.out << *script;
  return kExitOk;
}

int CmdMan(Invocation& inv) {
  inv.io.out << ManPage();
  return kExitOk;
}

}  // namespace cb::cli
