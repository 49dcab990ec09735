#include "tier/uv/scan_delete.hpp"

#include <memory>

namespace tier {
namespace {

// Runs steps on the loop, one after another, until the cursor comes back to "0".
struct AsyncScan : std::enable_shared_from_this<AsyncScan> {
  AsyncClient& client;
  std::string pattern;
  DeleteOptions options;
  std::function<void(Result<std::uint64_t>)> done;
  std::uint64_t total = 0;

  AsyncScan(AsyncClient& c, std::string p, DeleteOptions o,
            std::function<void(Result<std::uint64_t>)> d)
      : client(c), pattern(std::move(p)), options(std::move(o)), done(std::move(d)) {}

  void step(const std::string& cursor) {
    client.run(scan_unlink_step(cursor, pattern, options.batch),
               [self = shared_from_this()](Result<ScanStep> r) {
                 if (!r.ok()) {
                   self->done(r.error());
                   return;
                 }
                 self->total += r->deleted;
                 if (self->options.progress) {
                   self->options.progress(self->total);
                 }
                 bool cancelled = self->options.cancel && self->options.cancel->load();
                 if (r->cursor == "0" || cancelled) {
                   self->done(self->total);
                   return;
                 }
                 self->step(r->cursor);
               });
  }
};

}  // namespace

void delete_by_pattern(AsyncClient& client, const std::string& pattern, DeleteOptions options,
                       std::function<void(Result<std::uint64_t>)> done) {
  if (auto bad = check_delete_pattern(pattern, options.batch)) {
    done(*bad);
    return;
  }
  auto scan = std::make_shared<AsyncScan>(client, pattern, std::move(options), std::move(done));
  scan->step("0");
}

}  // namespace tier
