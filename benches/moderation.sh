#!/usr/bin/env bash
# Times `tidings moderate approve --all` of N held posts (release build).
#
#   cargo build --release
#   N=1000 bash benches/moderation.sh
#
# Makes a store with N posts held by a moderated English list (each piped
# in from a stranger, as Postfix would), then approves them all, five times
# from a fresh copy of that store, timed as a whole process. The feeds are
# written once per approval run (the command says so).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}
TIDINGS=${TIDINGS:-target/release/tidings}
work=$(mktemp -d /tmp/tidings-moderation.XXXXXX)
trap 'rm -rf "$work"' EXIT
sed 's/^posting = "open"$/posting = "moderated"/' lists.toml > "$work/lists.toml"
grep -q '^posting = "moderated"$' "$work/lists.toml"
for i in $(seq 1 "$N"); do
  printf 'From: Stranger %d <stranger%d@example.net>\r\nTo: a-infos-en@lists.example.org\r\nSubject: (en) Held post %d\r\nMessage-ID: <held-%d@example.net>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nThe text of held post %d.\r\n' \
    "$((i % 50))" "$((i % 50))" "$i" "$i" "$i" |
    SENDER="stranger$((i % 50))@example.net" "$TIDINGS" --config "$work/lists.toml" ingest a-infos-en@lists.example.org
done
held=$("$TIDINGS" --config "$work/lists.toml" moderate list | grep -c 'Held post' || true)
echo "held: $held"
cp -r "$work/data" "$work/held"
for run in 1 2 3 4 5 6; do
  rm -rf "$work/data" "$work/feeds" && cp -r "$work/held" "$work/data"
  /usr/bin/time -f "run $run: %e s wall, %M KB peak" \
    "$TIDINGS" --config "$work/lists.toml" moderate approve --all > "$work/out.txt"
  tail -1 "$work/out.txt"
done
