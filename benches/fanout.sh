#!/usr/bin/env bash
# Fan-out benchmark of issue 4: one digest to SUBSCRIBERS subscribers, each
# message personalised (To, Message-ID, one-click unsubscribe URL, VERP
# sender) and DKIM-signed, into Postfix's smtp-sink on loopback; next to it,
# in the same run, Postfix's own load generator smtp-source sending messages
# of the same size over the same number of connections into the same sink.
#
#   CARGO_TARGET_DIR=/work/target-digest cargo build --release
#   bash benches/fanout.sh                       # defaults below
#   SUBSCRIBERS=20000 SIGNING="ed25519" SIZES="small" bash benches/fanout.sh
#
# Digests: "small" (about 25 KB) and "full" (about 150 KB, a day of A-Infos),
# both MIME digests of English posts made by ../shared/corpus/gen-posts.py.
# "post" (issue 10) is per-post delivery instead: every subscriber in mode
# post, one 5 KB post piped in with `tidings ingest` (which queues its
# deliveries), then sent as it came under the list's fields and signature:
#
#   SIZES=post SIGNING="ed25519 none" bash benches/fanout.sh
# Each configuration runs REPEAT times (default 3), alternating with
# smtp-source runs, from the same prepared database; prints one line per
# configuration with the medians: messages/s of tidings and of smtp-source,
# their ratio, tidings' peak memory (GNU time's maximum resident set size)
# and CPU seconds, and the CPU smtp-sink spent per message of each sender
# with the share of its core it kept busy: where the sink is busy all the
# time, it sets the rate, and the ratio can be no more than its CPU per
# message of smtp-source over its CPU per message of ours (both columns
# "tidings/smtp-source").
set -euo pipefail
cd "$(dirname "$0")/.."

SUBSCRIBERS=${SUBSCRIBERS:-100000}
CONNECTIONS=${CONNECTIONS:-8}
SIZES=${SIZES:-"small full"}
SIGNING=${SIGNING:-"ed25519 rsa none"}
REPEAT=${REPEAT:-3}
TARGET=${CARGO_TARGET_DIR:-target}
TIDINGS=${TIDINGS:-$TARGET/release/tidings}
[ -x "$TIDINGS" ] || { echo "build first: cargo build --release ($TIDINGS missing)" >&2; exit 1; }

work=$(mktemp -d)
sink_pid=
cleanup() { [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# SINK_OPTIONS: more smtp-sink options, e.g. "-p" (no PIPELINING offered).
/usr/sbin/smtp-sink -u "$(id -un)" ${SINK_OPTIONS:-} "127.0.0.1:$port" 1024 &
sink_pid=$!
sleep 0.5

# Posts: English ones only, the first that add up to about 25 KB / 150 KB.
python3 ../shared/corpus/gen-posts.py --tags ainfos --n 3000 --seed 4 --format mbox \
  --rate huge=0 --rate attach=0 --out "$work/all.mbox" >/dev/null
python3 - "$work" <<'PY'
import json, mailbox, sys
work = sys.argv[1]
truth = [json.loads(l) for l in open(work + "/all.mbox.truth.jsonl")]
box = mailbox.mbox(work + "/all.mbox")
for name, target in (("small", 21_000), ("full", 140_000)):
    out = mailbox.mbox(work + "/" + name + ".mbox")
    total = 0
    for message, t in zip(box, truth):
        if t["list_code"] != "en" or t["is_duplicate"] or total >= target:
            continue
        out.add(message)
        total += t["size"]
    out.flush()
PY
# One post of about 5 KB, as a contributor sends it.
python3 - "$work/post.eml" <<'PY'
import sys
from email.message import EmailMessage
from email.policy import SMTP
msg = EmailMessage(policy=SMTP)
msg["From"] = "Carla <carla@author.example>"
msg["To"] = "a-infos-en@lists.example.org"
msg["Subject"] = "(en) Strike at the port: dockers stop work"
msg["Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
msg["Message-ID"] = "<strike.bench@author.example>"
line = "Dockers stopped work this morning against the new shift rules. "
msg.set_content((line * 80)[:5000] + "\n")
open(sys.argv[1], "wb").write(msg.as_bytes())
PY

openssl genpkey -algorithm ed25519 -out "$work/ed25519.pem" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.pem" 2>/dev/null
python3 -c "
for i in range($SUBSCRIBERS): print('reader%06d@bench.example' % i)" > "$work/subscribers"

echo "fan-out of one digest or post to $SUBSCRIBERS subscribers, $CONNECTIONS connections, smtp-sink on 127.0.0.1:$port"
echo "$(nproc) cores; tidings $("$TIDINGS" --version); medians of $REPEAT runs each"
printf '%-6s %-8s %9s %12s %14s %7s %9s %9s %13s %13s\n' digest signing bytes "tidings/s" "smtp-source/s" ratio "peak MB" "CPU s" "sink us/msg" "sink busy %"
# smtp-sink's CPU so far, in clock ticks (user and system time).
sink_ticks() { awk '{print $14 + $15}' "/proc/$sink_pid/stat"; }
ticks_per_second=$(getconf CLK_TCK)
# Microseconds of sink CPU a message, and the share of the sink's core busy,
# from ticks before and after, the wall-clock seconds and the messages.
sink_use() { python3 -c "t = ($2 - $1) / $ticks_per_second; print('%.0f %.0f' % (1e6 * t / $4, 100 * t / $3))"; }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for size in $SIZES; do
  source_rates=() source_sink_us=() source_sink_busy=()
  for signing in $SIGNING; do
    dir="$work/run-$size-$signing"
    mkdir -p "$dir"
    sed -e 's/^transport = "file"/transport = "smtp"/' \
        -e "s/^port = 25\$/port = $port/" \
        -e 's/^tls = "opportunistic"/tls = "none"/' \
        -e "s/^connections = 4\$/connections = $CONNECTIONS/" \
        -e 's|^base_url = .*|base_url = "https://news.example.org/"|' \
        lists.toml > "$dir/lists.toml"
    case $signing in
      ed25519) printf '\n[[dkim]]\nselector = "bench-ed"\nalgorithm = "ed25519-sha256"\nkey_file = "%s"\n' "$work/ed25519.pem" >> "$dir/lists.toml" ;;
      rsa) printf '\n[[dkim]]\nselector = "bench-rsa"\nalgorithm = "rsa-sha256"\nkey_file = "%s"\n' "$work/rsa.pem" >> "$dir/lists.toml" ;;
    esac
    t() { "$TIDINGS" --config "$dir/lists.toml" "$@"; }
    if [ "$size" = post ]; then
      t subscribers add --no-confirm --list en --mode post - < "$work/subscribers" >/dev/null
      t ingest a-infos-en@lists.example.org < "$work/post.eml" >/dev/null
      send=(queue retry)
    else
      # Piped in one by one, as mail arrives: an import is archive, which
      # no digest sends.
      python3 - "$TIDINGS" "$dir/lists.toml" "$work/$size.mbox" <<'PY'
import mailbox, subprocess, sys
tidings, config, path = sys.argv[1:]
for message in mailbox.mbox(path):
    subprocess.run([tidings, "--config", config, "ingest", "--list", "en",
                    "a-infos-en@lists.example.org"], input=message.as_bytes(),
                   stdout=subprocess.DEVNULL, check=True)
PY
      t subscribers add --no-confirm --list en - < "$work/subscribers" >/dev/null
      t digest --list en --now --no-deliver >/dev/null
      send=(digest)
    fi
    # Every run starts from this copy: the digest issued (or the post's
    # deliveries queued), nothing sent.
    cp -a "$dir/data" "$dir/data.issued"
    rates=() peaks=() cpus=() sink_us=() sink_busy=()
    for run in $(seq "$REPEAT"); do
      rm -rf "$dir/data" && cp -a "$dir/data.issued" "$dir/data"
      before=$(sink_ticks) start=$(date +%s.%N)
      /usr/bin/time -v -o "$dir/time" "$TIDINGS" --config "$dir/lists.toml" "${send[@]}" > "$dir/out"
      end=$(date +%s.%N)
      line=$(grep '^delivered:' "$dir/out")
      sent=$(echo "$line" | sed -E 's/delivered: ([0-9]+) sent.*/\1/')
      [ "$sent" = "$SUBSCRIBERS" ] || echo "  only $sent of $SUBSCRIBERS sent: $line" >&2
      rates+=("$(echo "$line" | sed -E 's/.*\(([0-9]+) messages\/s, ([0-9.]+) MB\).*/\1/')")
      mb=$(echo "$line" | sed -E 's/.*\(([0-9]+) messages\/s, ([0-9.]+) MB\).*/\2/')
      size_bytes=$(python3 -c "print(int($mb * 1e6 / max($sent, 1)))")
      peaks+=("$(awk -F: '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$dir/time")")
      cpus+=("$(awk -F: '/User time|System time/ {s += $2} END {printf "%.1f", s}' "$dir/time")")
      # The run's wall time includes reading the store and starting, when
      # the sink idles, so its busy share is a floor.
      read -r us busy <<< "$(sink_use "$before" "$(sink_ticks)" "$(python3 -c "print($end - $start)")" "$SUBSCRIBERS")"
      sink_us+=("$us") sink_busy+=("$busy")
      # smtp-source: the same number of messages, of the same size, over the
      # same number of connections kept open (-d), into the same sink, once
      # after each tidings run of the first signing.
      if [ "${#source_rates[@]}" -lt "$REPEAT" ]; then
        before=$(sink_ticks) start=$(date +%s.%N)
        /usr/sbin/smtp-source -d -s "$CONNECTIONS" -l "$size_bytes" -m "$SUBSCRIBERS" -N \
          -f bench@bench.example -t reader@bench.example "127.0.0.1:$port"
        end=$(date +%s.%N)
        source_rates+=("$(python3 -c "print(round($SUBSCRIBERS / ($end - $start)))")")
        read -r us busy <<< "$(sink_use "$before" "$(sink_ticks)" "$(python3 -c "print($end - $start)")" "$SUBSCRIBERS")"
        source_sink_us+=("$us") source_sink_busy+=("$busy")
      fi
    done
    rate=$(printf '%s\n' "${rates[@]}" | median)
    source_rate=$(printf '%s\n' "${source_rates[@]}" | median)
    ratio=$(python3 -c "print('%.0f%%' % (100 * $rate / $source_rate))")
    pair() { echo "$(printf '%s\n' "${!1}" | median)/$(printf '%s\n' "${!2}" | median)"; }
    printf '%-6s %-8s %9s %12s %14s %7s %9s %9s %13s %13s   (tidings: %s; smtp-source: %s)\n' \
      "$size" "$signing" "$size_bytes" "$rate" "$source_rate" "$ratio" \
      "$(printf '%s\n' "${peaks[@]}" | median)" "$(printf '%s\n' "${cpus[@]}" | median)" \
      "$(pair 'sink_us[@]' 'source_sink_us[@]')" "$(pair 'sink_busy[@]' 'source_sink_busy[@]')" \
      "${rates[*]}" "${source_rates[*]}"
    rm -rf "$dir"
  done
done
