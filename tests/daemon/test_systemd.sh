#!/usr/bin/env bash
# Checks the systemd files as systemd itself reads them:
#  - `systemd-analyze verify` on the unit. verify refuses a unit whose ExecStart binary does not
#    exist, and /usr/bin/tierd is not installed on a build machine, so it checks a copy whose
#    ExecStart points at the freshly built binary (argument 1), or /bin/true when there is none.
#    Any output (warnings included: unknown keys, bad values) fails the test.
#  - `systemd-analyze security --offline=true`: the exposure score must be at most 2.0
#    (--threshold counts tenths: the score 2.0 is 20).
#  - sysusers and tmpfiles entries applied to a scratch root.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
unit="$here/systemd/tierd.service"
tierd_bin="${1:-}"
[ -x "$tierd_bin" ] || tierd_bin=/bin/true

fail() { echo "FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze not installed (scripts/setup installs systemd)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

sed "s#^ExecStart=/usr/bin/tierd #ExecStart=$tierd_bin #" "$unit" > "$work/tierd.service"
grep -q "^ExecStart=$tierd_bin " "$work/tierd.service" || fail "ExecStart line not found in $unit"
out="$(systemd-analyze verify --man=no "$work/tierd.service" 2>&1)" || fail "verify: $out"
[ -z "$out" ] || fail "verify printed warnings: $out"
# The check itself must catch a broken unit, or the pass above means nothing.
sed 's#^\[Service\]#[Service]\nProtectSytem=strict#' "$work/tierd.service" > "$work/broken.service"
bad="$(systemd-analyze verify --man=no "$work/broken.service" 2>&1 || true)"
echo "$bad" | grep -q "ProtectSytem" || fail "verify did not report an unknown key: $bad"
echo "ok: systemd-analyze verify"

report="$(systemd-analyze security --offline=true --threshold=20 "$unit" 2>&1)" ||
  fail "security exposure above 2.0: $(echo "$report" | tail -1)"
score="$(echo "$report" | sed -n 's/.*Overall exposure level for tierd.service: \([0-9.]*\).*/\1/p')"
[ -n "$score" ] || fail "no exposure score in: $report"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score > 2.0"
# The settings the design promises, so a later edit cannot drop one and still pass.
for key in Type=notify WatchdogSec=30 RestartPreventExitStatus=78 User=tierd \
  ProtectSystem=strict NoNewPrivileges=yes CapabilityBoundingSet= MemoryDenyWriteExecute=yes \
  "ExecReload=/bin/kill -HUP \$MAINPID"; do
  grep -qx -- "$key" "$unit" || fail "$unit lacks $key"
done
echo "ok: exposure $score (<= 2.0)"

if [ "$(id -u)" -eq 0 ]; then
  mkdir -p "$work/root/etc"
  systemd-sysusers --root="$work/root" "$here/systemd/tierd.sysusers" >/dev/null 2>&1 ||
    fail "sysusers: $(systemd-sysusers --root="$work/root" "$here/systemd/tierd.sysusers" 2>&1)"
  grep -q '^tierd:' "$work/root/etc/passwd" || fail "sysusers did not create user tierd"
  systemd-tmpfiles --root="$work/root" --create "$here/systemd/tierd.tmpfiles" ||
    fail "tmpfiles failed"
  [ "$(stat -c %a "$work/root/etc/tierd")" = 750 ] || fail "/etc/tierd mode is not 0750"
  [ "$(stat -c %a "$work/root/etc/tierd/credentials")" = 700 ] || fail "credentials mode is not 0700"
  echo "ok: sysusers and tmpfiles"
else
  echo "skip: sysusers/tmpfiles need root to apply to a scratch root"
fi
echo "systemd files: all checks passed"
