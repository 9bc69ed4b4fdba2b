#!/bin/bash
# CPU per opened stream: h2load bursts of 1000 SSE streams (1 event each) through nginx and the proxy.
ulimit -n 20000; W=/tmp/s14/oc; mkdir -p $W; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
S=/work/main/proxy-bench/scripts; J=/tmp/s14/bench.jar; P=${P:-/tmp/s14/proxy-main.jar}
printf '%s' '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello! Please stream."}]}' > body.json
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/s9/rig/nginx/nginx.conf -p /tmp/s9/rig/nginx/ 2>/dev/null
rm -rf pa; $S/start-proxy.sh $W/pa 18991 $P "" java ${JOPTS}
sleep 6; $S/warm.sh 18991 >/dev/null 2>&1
ppid=$(ss -ltnp "sport = :18991" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
npid=$(pgrep -P $(cat /tmp/s9/rig/nginx/nginx.pid) | head -1)
cpu() { cat /proc/$1/task/*/schedstat 2>/dev/null | awk '{s+=$1} END {printf "%d", s/1000}'; }
burst() { taskset -c 0 h2load --h1 -c1000 -n1000 -m1 -t1 -d body.json -H 'Content-Type: application/json' \
  -H 'Accept: text/event-stream' -H 'Authorization: Bearer client' -H "X-Mock-Events: ${EVENTS:-1}" -H 'X-Mock-Interval-Ms: 20' \
  http://127.0.0.1:$1/v1/chat/completions | grep -E "succeeded|time to 1st" | tr -s ' ' | tr '\n' ' '; echo; }
for i in $(seq 1 ${WARM:-30}); do burst 18991 >/dev/null; burst 18902 > /dev/null; done
for r in $(seq 1 ${ROUNDS:-5}); do
  for pp in "proxy 18991 $ppid" "nginx 18902 $npid"; do set -- $pp
    c0=$(cpu $3); out=$(burst $2); c1=$(cpu $3)
    echo "$1 round $r cpu_us_per_stream=$(( (c1-c0)/1000 )) $out"
  done
done
${AFTER:-true}
kill $ppid; nginx -s quit -c /tmp/s9/rig/nginx/nginx.conf -p /tmp/s9/rig/nginx/ 2>/dev/null; pkill -f 'bench.jar mock'; sleep 2; rm -rf $W/pa
