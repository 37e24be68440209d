#!/usr/bin/env bash
# Builds the web app (web/) into web/dist, which build.rs embeds into the bedrud binary.
# Installs its npm packages from the committed lock file first (npm ci), unless they are already
# installed from this very lock file. Needs Node.js 20.19+ and npm (Debian: apt-get install nodejs npm).
# Usage: scripts/build-web.sh [--lint]   (--lint also runs ESLint)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../web"

command -v node >/dev/null && command -v npm >/dev/null || {
  echo "build-web: Node.js and npm are needed to build the web app: apt-get install nodejs npm" >&2
  exit 1
}
# Vite 8 and ESLint 10 need Node.js 20.19 or newer (Debian 12's own nodejs is 18).
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "build-web: Node.js $(node --version) is too old: 20.19 or newer is needed (Debian 13's nodejs, or NodeSource's for Debian 12)" >&2
  exit 1
fi
# npm ci wipes node_modules: only when the lock file changed since the last install.
stamp=node_modules/.bedrud-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
if [ "${1:-}" = --lint ]; then
  npx --no-install eslint --max-warnings=0 .
fi
# Rebuild only when a source changed since the last build.
if [ -f dist/index.html ] && [ -z "$(find src index.html package-lock.json vite.config.ts tsconfig.json scripts -newer dist/index.html -print -quit)" ]; then
  exit 0
fi
npm run --silent build
