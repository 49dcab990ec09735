#include "tier/scan_delete.hpp"

#include "tier/async_client.hpp"
#include "tier/client.hpp"
#include "tier/keys.hpp"

namespace tier {
namespace {

std::optional<Error> check_pattern(const std::string& pattern, std::uint32_t batch) {
  if (pattern.empty()) {
    return Error{ErrorKind::invalid, "pattern is empty"};
  }
  if (pattern.size() > 4096) {
    return Error{ErrorKind::invalid, "pattern is longer than 4096 bytes"};
  }
  if (batch == 0 || batch > 100000) {
    return Error{ErrorKind::invalid, "batch must be between 1 and 100000"};
  }
  return std::nullopt;
}

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

Op<ScanStep> scan_unlink_step(const std::string& cursor, const std::string& pattern,
                              std::uint32_t batch) {
  if (auto bad = check_pattern(pattern, batch)) {
    return Op<ScanStep>::fail(*bad);
  }
  return single<ScanStep>(
      Command::eval(script("scan_unlink"), {}, {cursor, pattern, std::to_string(batch)}),
      [pattern](Reply&& r) -> Result<ScanStep> {
        if (!r.is_array() || r.elements.size() != 2 || !r.elements[1].is_integer()) {
          return reply_error(r, "scan_unlink '" + excerpt(pattern) + "'");
        }
        return ScanStep{std::move(r.elements[0].str),
                        static_cast<std::uint64_t>(r.elements[1].integer)};
      });
}

std::uint64_t delete_by_pattern(Client& client, const std::string& pattern,
                                const DeleteOptions& options) {
  std::uint64_t total = 0;
  std::string cursor = "0";
  do {
    ScanStep s = client.run(scan_unlink_step(cursor, pattern, options.batch));
    total += s.deleted;
    cursor = std::move(s.cursor);
    if (options.progress) {
      options.progress(total);
    }
    if (options.cancel && options.cancel->load()) {
      break;
    }
  } while (cursor != "0");
  return total;
}

void delete_by_pattern(AsyncClient& client, const std::string& pattern, DeleteOptions options,
                       std::function<void(Result<std::uint64_t>)> done) {
  if (auto bad = check_pattern(pattern, options.batch)) {
    done(*bad);
    return;
  }
  auto scan = std::make_shared<AsyncScan>(client, pattern, std::move(options), std::move(done));
  scan->step("0");
}

}  // namespace tier
