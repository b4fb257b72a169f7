#!/usr/bin/env bash
# Refresh the front-end libraries in static/vendor/ from the npm registry.
#
# The copied files are committed, so running the portal (and a fresh clone)
# needs no node. Run this only to add or update a library:
#   1. edit the exact version in scripts/vendor/package.json,
#   2. scripts/vendor_js.sh          (needs node and npm; rewrites the lock file),
#   3. run the chat tests, review `git diff --stat static/vendor`, commit both.
# `npm ci` installs exactly what package-lock.json pins (integrity-checked).
set -euo pipefail
cd "$(dirname "$0")/vendor"
if [ -f package-lock.json ] && [ "${1:-}" != "--update" ]; then
  npm ci --no-audit --no-fund --ignore-scripts
else
  npm install --no-audit --no-fund --ignore-scripts --save-exact --omit-lockfile-registry-resolved
fi
modules=node_modules
out=../../static/vendor
rm -rf "$out"
mkdir -p "$out/marked" "$out/dompurify" "$out/highlight" "$out/temml"

cp "$modules/marked/lib/marked.umd.js" "$modules/marked/LICENSE" "$out/marked/"
cp "$modules/dompurify/dist/purify.min.js" "$modules/dompurify/LICENSE" "$out/dompurify/"
hl="$modules/@highlightjs/cdn-assets"
cp "$hl/highlight.min.js" "$hl/LICENSE" "$out/highlight/"
cp "$hl/styles/github.min.css" "$hl/styles/github-dark.min.css" "$out/highlight/"
cp "$modules/temml/dist/temml.min.js" "$modules/temml/dist/Temml-Local.css" \
  "$modules/temml/dist/Temml.woff2" "$modules/temml/LICENSE" "$out/temml/"

# The source maps are not shipped: drop the comments pointing at them (the
# production static storage refuses references to missing files).
find "$out" -name "*.js" -exec sed -i '/^\/\/# sourceMappingURL=/d' {} +

node -e '
const lock = require("./package-lock.json");
const lines = Object.entries(lock.packages)
  .filter(([path]) => path.startsWith("node_modules/"))
  .map(([path, info]) => `${path.slice(13)} ${info.version} ${info.license || ""}`);
console.log(lines.join("\n"));
' > "$out/VERSIONS.txt"
echo "static/vendor/ refreshed:"
cat "$out/VERSIONS.txt"
