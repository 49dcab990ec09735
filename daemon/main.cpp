// tierd: the worker daemon. Arguments and config errors end here with exit 78
// (EX_CONFIG, which systemd's RestartPreventExitStatus= knows); everything else lives in
// App.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "daemon/app.hpp"
#include "daemon/probe.hpp"
#include "handlers/registry.hpp"

namespace {

constexpr int kExitUsage = 64;   // EX_USAGE
constexpr int kExitConfig = 78;  // EX_CONFIG

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: tierd [--config FILE]   run (default: the built-in config)\n"
               "       tierd --check-config FILE   validate FILE and exit (0 ok, 78 invalid)\n"
               "       tierd --probe [URL]   GET URL (default: /healthz at http.listen);\n"
               "                             exit 0 on 200, 1 otherwise (container HEALTHCHECK)\n"
               "       tierd --print-default-config\n"
               "       tierd --version\n");
}

// tierd --probe [URL]: the URL given, or /healthz where the config (file given before
// --probe, or the built-in one, with the environment's overrides) says tierd listens.
int probe(const char* url, const std::string& config_path) {
  tierd::ProbeTarget target;
  try {
    if (url != nullptr) {
      target = tierd::parse_probe_url(url);
    } else {
      const tierd::Config c = config_path.empty()
                                  ? tierd::parse_config(tierd::default_config_text(), "<built-in>")
                                  : tierd::load_config(config_path);
      target = tierd::probe_target(c.http_host, c.http_port);
    }
  } catch (const tierd::ConfigError& e) {
    std::fprintf(stderr, "tierd --probe: %s: %s\n",
                 config_path.empty() ? "<built-in>" : config_path.c_str(), e.what());
    return kExitConfig;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "tierd --probe: bad URL: %s\n", e.what());
    return kExitUsage;
  }
  return tierd::run_probe(target, std::chrono::milliseconds(2000));
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that resets a socket while we write to it (an HTTP client, CLIENT KILL on a Redis
  // link) must cost that connection, not the process: writes then fail with EPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--version") {
      std::printf("%s\n", tierd::version_string().c_str());
      return 0;
    }
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    }
    if (arg == "--print-default-config") {
      std::fwrite(tierd::default_config_text().data(), 1, tierd::default_config_text().size(),
                  stdout);
      return 0;
    }
    if (arg == "--probe") {
      return probe(i + 1 < argc ? argv[i + 1] : nullptr, config_path);
    }
    if ((arg == "--config" || arg == "--check-config") && i + 1 < argc) {
      check_only = check_only || arg == "--check-config";
      config_path = argv[++i];
      continue;
    }
    std::fprintf(stderr, "tierd: unknown or incomplete argument '%s'\n", arg.c_str());
    usage(stderr);
    return kExitUsage;
  }

  tierd::Config config;
  try {
    config = config_path.empty() ? tierd::parse_config(tierd::default_config_text(), "<built-in>")
                                 : tierd::load_config(config_path);
    // Every handler section through its factory, as start and reload do.
    (void)tierd::resolve(config);
  } catch (const tierd::ConfigError& e) {
    std::fprintf(stderr, "tierd: %s: %s\n",
                 config_path.empty() ? "<built-in>" : config_path.c_str(), e.what());
    return kExitConfig;
  }
  if (check_only) {
    std::printf("%s: ok (%zu handler(s))\n", config_path.c_str(), config.handlers.size());
    return 0;
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  int code = 0;
  {
    tierd::AppOptions options;
    options.config = std::move(config);
    options.config_path = config_path;
    tierd::App app(&loop, std::move(options));
    if (auto st = app.start(); !st.ok()) {
      // Already logged. A config that cannot work is EX_CONFIG (systemd does not retry);
      // anything else (a port in use may free up) is 1, so systemd may retry.
      app.shutdown();
      uv_run(&loop, UV_RUN_DEFAULT);
      code = st.error().kind == tier::ErrorKind::invalid ? kExitConfig : 1;
    } else {
      uv_run(&loop, UV_RUN_DEFAULT);
      code = app.exit_code();
    }
  }
  // Let close callbacks of handles released by the App's destructor run.
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return code;
}
