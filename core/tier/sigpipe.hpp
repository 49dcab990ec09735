#pragma once
// Writing to a socket whose peer has reset it raises SIGPIPE, and its default action kills
// the process without a word. hiredis and libuv write with plain write(2), so any client
// that resets a connection while tierd writes to it (an HTTP client, CLIENT KILL on a Redis
// link) could end the process. Every transport of libtier calls this on construction.

namespace tier {

/// Sets SIGPIPE to "ignore" when it still has its default action, so that a broken socket
/// surfaces as EPIPE from the write instead. A disposition the application chose itself (a
/// handler, or SIG_IGN already) is left alone. Thread-safe; one sigaction() to look.
void ignore_sigpipe() noexcept;

}  // namespace tier
