#!/bin/bash
# held.sh <port> <n>: opens n SSE streams through the peer on <port> (h2load --h1, 2,500 new connections a
# second, streams of 1,000,000 events 1 s apart), holds them 15 s, prints the peer's RSS before and at the peak,
# the streams the mock saw, then closes them (kills h2load).
port=$1; n=$2
# The process that holds the streams: for Nginx the worker, not the master (the one without children).
for p in $(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
  [ -z "$(pgrep -P $p)" ] && pid=$p
done
rss() { awk '/VmRSS/{print $2}' /proc/$pid/status; }
before=$(rss); peak=$before
ulimit -n 20000
taskset -c 0 h2load --h1 -c $n -n $n -m 1 -t 1 --rate 2500 --rate-period 1s -d /tmp/s8/rig/stream-body.json \
  -H 'Content-Type: application/json' -H 'Accept: text/event-stream' -H 'Authorization: Bearer sk-bench-client-key' \
  -H 'X-Mock-Events: 1000000' -H 'X-Mock-Interval-Ms: 1000' http://127.0.0.1:$port/v1/chat/completions > /tmp/s8/rig/h2held-$port.out 2>&1 &
h=$!
end=$((SECONDS + n / 2500 + 20))
while [ $SECONDS -lt $end ]; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.25; done
est=$(ss -tn state established "( dport = :18900 )" | tail -n +2 | wc -l)
echo "port=$port streams=$n rss_before_mb=$((before/1024)) rss_peak_mb=$((peak/1024)) upstream_conns=$est peak_per_stream_kb=$(echo "scale=1; $peak/$n" | bc)"
kill $h; wait $h 2>/dev/null; sleep 3
