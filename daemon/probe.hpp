#pragma once
// `tierd --probe [URL]`: one blocking GET of a tierd endpoint, for a container HEALTHCHECK or
// a script, with no curl in the image. The URL is http://IP:PORT/PATH (an IP literal, as
// http.listen is); without one, /healthz at the configured http.listen (0.0.0.0 and :: are
// probed on loopback). A separate short-lived process: blocking is fine here.

#include <chrono>
#include <string>

namespace tierd {

struct ProbeTarget {
  std::string host;  ///< IP literal
  int port = 0;
  std::string path = "/healthz";
};

/// Parses http://IP:PORT[/PATH] (IPv6 in brackets). Throws std::invalid_argument naming
/// what is wrong.
ProbeTarget parse_probe_url(const std::string& url);

/// The target for the configured listen address.
ProbeTarget probe_target(const std::string& listen_host, int listen_port);

/// GETs the target: 0 when it answers 200, 1 otherwise (any other status, refused, timed
/// out, garbage), with one line on stderr saying which.
int run_probe(const ProbeTarget& target, std::chrono::milliseconds timeout);

}  // namespace tierd
