#!/bin/bash
# Where the proxy's heap bytes go when streams open: JFR (settings=profile) over 10 h2load bursts
# of 1,000 SSE streams (10 events 20 ms apart each), after a closed-loop warm-up and 15 unrecorded
# bursts; JDK 17 defaults, proxy on core 1, mock and h2load on core 0. -Xlog:gc gives the bytes.
J=/tmp/s13/bench.jar; P=/tmp/s13/proxy-base.jar
S=/work/main/proxy-bench/scripts
ulimit -n 20000; W=/tmp/s13/jfr; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
printf '%s' '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello! Please stream."}]}' > body.json
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf pa; $S/start-proxy.sh $W/pa 18991 $P "" java -Xlog:gc*=debug:file=$W/gcd.log:uptime
sleep 6; $S/warm.sh 18991 >/dev/null 2>&1
burst() { taskset -c 0 h2load --h1 -c1000 -n1000 -m1 -t1 -d body.json -H 'Content-Type: application/json' \
  -H 'Accept: text/event-stream' -H 'Authorization: Bearer client' -H 'X-Mock-Events: 10' -H 'X-Mock-Interval-Ms: 20' \
  http://127.0.0.1:18991/v1/chat/completions | grep -E "succeeded|time to 1st"; }
for i in $(seq 1 40); do burst; done
pid=$(ss -ltnp "sport = :18991" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
echo "recording from $(date +%T.%N)"
for i in $(seq 1 10); do burst; done
echo "recording to $(date +%T.%N)"
jcmd $pid GC.heap_info
kill $pid; pkill -f 'bench.jar mock'; sleep 2; rm -rf $W/pa
