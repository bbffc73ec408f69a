#!/usr/bin/env bash
# Builds a Caddy with this plugin from this clone using xcaddy, then checks
# that both handlers are in it. Needs only Go (and the module proxy).
#
#	scripts/xcaddy-build.sh              # -> ./caddy
#	scripts/xcaddy-build.sh /tmp/caddy-x
#
# On 2 cores: about 6 min with empty Go caches (fresh CI), ~10 s when warm.
#
# Why the --with argument carries a version: for `--with MOD=.` xcaddy runs
# `go get MOD`, which lists MOD's versions on the proxy. A module that is not
# published (or a proxy that refuses listings) fails that step, e.g.
#   reading .../caddy-alipay-notify/@v/list: 403 Forbidden
# With `MOD@v0.0.0-00010101000000-000000000000=.` xcaddy writes a replace for
# exactly that version and go resolves it from the replace, no listing needed.
# That zero pseudo-version is what go itself uses for a replaced module that
# has no published version, so the form works on any proxy, before and after
# publishing. The Caddy version is passed explicitly (from go.mod) for the same
# reason, and so that xcaddy builds against the Caddy this plugin is tested on.
set -euo pipefail

out=${1:-./caddy}
[[ $out == /* ]] || out=$PWD/${out#./} # absolute, as we cd to the clone below
cd "$(dirname "$0")/.."
mod=$(go list -m -f '{{.Path}}')
caddy_version=$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)
xcaddy_version=v0.4.5

xcaddy=$(command -v xcaddy || true)
if [[ -z $xcaddy ]]; then
	# A throw-away GOBIN so that nothing is left on the machine or the PATH.
	gobin=$(mktemp -d)
	trap 'rm -rf "$gobin"' EXIT
	GOBIN=$gobin go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$xcaddy_version"
	xcaddy=$gobin/xcaddy
fi
echo "== xcaddy $("$xcaddy" version)"

"$xcaddy" build "$caddy_version" \
	--with "$mod@v0.0.0-00010101000000-000000000000=." \
	--output "$out"

# xcaddy already ran `$out version`; also prove the plugin's handlers are in.
modules=$("$out" list-modules)
for m in http.handlers.alipay_notify http.handlers.alipay_verify; do
	grep -qx "$m" <<<"$modules" || { echo "FAIL: $m missing from $out" >&2; exit 1; }
done
echo "== ok: $out ($("$out" version)) has http.handlers.alipay_notify and alipay_verify"
