#include "tier/sigpipe.hpp"

#include <csignal>

namespace tier {

void ignore_sigpipe() noexcept {
  // Checked on every call, not once: a process may restore the default after a fork, and
  // two threads racing here both store the same SIG_IGN.
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) != 0) {
    return;
  }
  if ((current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_DFL) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, nullptr);
  }
}

}  // namespace tier
