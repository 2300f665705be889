#!/usr/bin/env bash
# Re-vendor the official MCP Apps SDK (npm @modelcontextprotocol/ext-apps) for the pages, and build the
# test host's AppBridge bundle from the same release. Run from anywhere; needs node and npm.
#
#   server/wan_image_mcp/mcp_server/ui/vendor/ext-apps-app-with-deps.js
#       dist/src/app-with-deps.js of the package, byte for byte: the view-side `App` with its dependencies,
#       one ES module. ui_pages.py inlines it into each page (no CDN, works offline).
#   server/wan_image_mcp/mcp_server/ui/vendor/LICENSE          the package's LICENSE
#   tests/apps/vendor/app-bridge.js   the host-side `AppBridge` + `PostMessageTransport` bundled with esbuild
#       (the package ships them only as an ES module importing @modelcontextprotocol/client, core and zod)
#   tests/apps/vendor/LICENSE.*       the licences of what that bundle holds
set -euo pipefail
VERSION=2.0.4
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --silent "@modelcontextprotocol/ext-apps@$VERSION" \
  @modelcontextprotocol/client@^2 @modelcontextprotocol/core@^2 zod@^4.2 esbuild@0.28
pkg=node_modules/@modelcontextprotocol/ext-apps
cp "$pkg/dist/src/app-with-deps.js" "$here/ext-apps-app-with-deps.js"
cp "$pkg/LICENSE" "$here/LICENSE"
printf 'export { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";\n' > entry.js
node_modules/.bin/esbuild entry.js --bundle --format=esm --platform=browser --minify --legal-comments=none \
  --outfile="$root/tests/apps/vendor/app-bridge.js"
for dep in @modelcontextprotocol/ext-apps @modelcontextprotocol/client @modelcontextprotocol/core zod @standard-schema/spec; do
  cp "node_modules/$dep/LICENSE" "$root/tests/apps/vendor/LICENSE.$(basename "$dep")"
done
{
  echo "@modelcontextprotocol/ext-apps $VERSION (npm), bundled $(date -u +%Y-%m-%d) by update.sh:"
  for dep in @modelcontextprotocol/ext-apps @modelcontextprotocol/client @modelcontextprotocol/core zod @standard-schema/spec esbuild; do
    echo "  $dep $(node -p "require('./node_modules/$dep/package.json').version")"
  done
} | tee "$here/VERSION" > "$root/tests/apps/vendor/VERSION"
