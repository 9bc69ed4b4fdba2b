#!/bin/bash
# 32 MiB embeddings-shaped answers (bulk-upstream.py on 18950, core 0) through Nginx (18952), the proxy
# before (18953) and after (18954), each on core 1; 30 warm-up requests each, then 5 rounds
# of 10 requests, peers rotated; time_total per request and the peer's CPU per request.
B='{"model":"text-embedding-3-small","input":"hi"}'
one() { taskset -c 0 curl -s -o /dev/null -w "%{http_code} %{size_download} %{time_total}\n" -H 'content-type: application/json' -d "$B" http://127.0.0.1:$1/v1/embeddings; }
pidof_port() { ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }  # nginx lists its worker first
for p in 18952 18953 18954; do for i in $(seq 30); do one $p > /dev/null; done; done
names=([18952]=nginx [18953]=before [18954]=after)
order=(18952 18953 18954)
for r in 1 2 3 4 5; do
  for k in 0 1 2; do p=${order[$(( (k + r) % 3 ))]}; pid=$(pidof_port $p)
    c0=$(awk '{print $14+$15}' /proc/$pid/stat); ts=""
    for i in $(seq 10); do ts="$ts $(one $p | awk '{print $3}')"; done
    c1=$(awk '{print $14+$15}' /proc/$pid/stat)
    echo "round $r ${names[$p]} cpu_ms_per_req $(( c1-c0 )) times$ts"
  done
done
