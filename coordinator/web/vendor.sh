#!/usr/bin/env bash
# Refreshes the vendored chart library from npm at the versions pinned in package.json and
# package-lock.json. The files under static/vendor/ are committed and embedded into the
# coordinator binary (coordinator/src/web/assets.rs), so building and running need no
# network and no npm; run this only to move to a new pinned version.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
cp node_modules/d3/dist/d3.min.js static/vendor/d3.min.js
cp node_modules/@observablehq/plot/dist/plot.umd.min.js static/vendor/plot.umd.min.js
cp node_modules/d3/LICENSE static/vendor/LICENSE-d3.txt
cp node_modules/@observablehq/plot/LICENSE static/vendor/LICENSE-plot.txt
rm -rf node_modules
sha256sum static/vendor/*.js
