// Catch2 runner for the test binaries: runs the suite, then stops the servers this
// binary started, whatever the outcome.
#define CATCH_CONFIG_RUNNER
#include <signal.h>
#include <catch2/catch.hpp>

namespace tiertest {
void stop_shared_servers();
}

int main(int argc, char* argv[]) {
  ::signal(SIGPIPE, SIG_IGN);
  int rc = Catch::Session().run(argc, argv);
  tiertest::stop_shared_servers();
  return rc;
}
