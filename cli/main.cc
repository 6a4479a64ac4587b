// cbctl: parse flags and call the library (cli/app.h). Nothing else lives here.
#include <unistd.h>

#include <iostream>

#include "cli/app.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  cb::cli::Io io{std::cout,
                 std::cerr,
                 std::cin,
                 isatty(STDOUT_FILENO) == 1,
                 isatty(STDERR_FILENO) == 1,
                 isatty(STDIN_FILENO) == 1};
  int code = cb::cli::Run(argc, argv, io);
  std::cout.flush();
  std::cerr.flush();
  return code;
}
