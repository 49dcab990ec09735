#pragma once
// The host side of tierd::Context: what the daemon lends a handler (its Redis link, its own
// extra connections, PostgreSQL, timers, metrics, the app's logger). The dispatcher gives one
// to each handler instance; the write-behind tests and benchmark use the same one.

#include <spdlog/logger.h>
#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/uv_timer.hpp"
#include "handlers/handler.hpp"
#include "tier/metrics.hpp"
#include "tier/pg/conn.hpp"
#include "tier/uv/async_client.hpp"
#include "tier/uv/http_client.hpp"
#include "tier/uv/lock.hpp"

namespace tierd {

/// What the host lends; outlives every context made from it.
struct HostEnv {
  uv_loop_t* loop = nullptr;
  tier::AsyncClient* redis = nullptr;
  tier::PgConn* postgres = nullptr;  ///< may be null
  tier::metrics::Registry* metrics = nullptr;
  spdlog::logger* log = nullptr;
  std::string instance_id;
  /// A handler's own Redis connection was opened (Context::redis_connection) / is going
  /// away: the app watches it like its own links. Either may be empty.
  std::function<void(const std::string& label, tier::AsyncClient& link)> watch_link;
  std::function<void(tier::AsyncClient& link)> unwatch_link;
  /// Context::report_ready of one context (`who`); ready = nullopt forgets every report of
  /// that context (it is going away). May be empty.
  std::function<void(const void* who, const std::string& group, const std::string& item,
                     std::optional<bool> ready)>
      report_ready;
};

class HostContext final : public Context {
 public:
  HostContext(const HostEnv& env, std::string name, std::string prefix)
      : env_(env), name_(std::move(name)), prefix_(std::move(prefix)) {}
  ~HostContext() override {
    for (const auto& entry : links_) {
      if (env_.unwatch_link) {
        env_.unwatch_link(*entry.second);
      }
    }
    if (env_.report_ready) {
      env_.report_ready(this, {}, {}, std::nullopt);
    }
  }
  HostContext(const HostContext&) = delete;
  HostContext& operator=(const HostContext&) = delete;

  tier::AsyncClient& redis() override { return *env_.redis; }
  tier::AsyncClient& redis_connection(const std::string& label,
                                      std::chrono::milliseconds command_timeout) override {
    tier::AsyncOptions o = env_.redis->options();
    o.label = label;
    o.client_name = "tierd:" + label;
    o.command_timeout = command_timeout;
    auto link = std::make_unique<tier::AsyncClient>(env_.loop, o);
    if (env_.watch_link) {
      env_.watch_link(label, *link);
    }
    link->start();
    links_.emplace_back(label, std::move(link));
    return *links_.back().second;
  }
  tier::PgConn* postgres() override { return env_.postgres; }
  tier::uv::HttpClient& http() override {
    if (!http_) {
      http_ = std::make_unique<tier::uv::HttpClient>(env_.loop);
    }
    return *http_;
  }
  TimerHandle start_timer(std::chrono::milliseconds delay, std::chrono::milliseconds repeat,
                          std::function<void()> cb) override {
    return std::make_unique<UvTimer>(env_.loop, delay, repeat, std::move(cb));
  }
  LeadershipHandle lead(const std::string& job, std::chrono::milliseconds lease,
                        std::function<void(bool)> on_change) override {
    struct Campaign final : Leadership {
      Campaign(tier::AsyncClient& redis, const std::string& prefix, const std::string& job,
               std::chrono::milliseconds lease, std::function<void(bool)> cb)
          : holder(redis, tier::Locks(prefix), "tierd:leader:" + job, lease,
                   [cb = std::move(cb)](bool held, std::int64_t) {
                     if (cb) {
                       cb(held);
                     }
                   }) {
        holder.start();
      }
      bool leading() const override { return holder.held(); }
      tier::uv::LockHolder holder;
    };
    return std::make_unique<Campaign>(*env_.redis, prefix_, job, lease, std::move(on_change));
  }
  tier::metrics::Registry& metrics() override { return *env_.metrics; }
  spdlog::logger& log() override { return *env_.log; }
  void report_ready(const std::string& group, const std::string& item, bool ready) override {
    if (env_.report_ready) {
      env_.report_ready(this, group, item, ready);
    }
  }
  const std::string& instance_id() const override { return env_.instance_id; }
  const std::string& key_prefix() const override { return prefix_; }
  const std::string& handler_name() const override { return name_; }

 private:
  const HostEnv& env_;
  std::string name_;
  std::string prefix_;
  std::vector<std::pair<std::string, std::unique_ptr<tier::AsyncClient>>> links_;
  std::unique_ptr<tier::uv::HttpClient> http_;
};

}  // namespace tierd
