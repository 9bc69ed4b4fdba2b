#!/bin/bash
# perf on core 1 at 64 connections: the proxy (JDK 17 defaults, perf map for Java symbols), then Nginx; user/kernel split per request
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
P=${JAR:-/work/main/proxy-server/target/megallm-proxy.jar}
S=/work/main/proxy-bench/scripts
W=/tmp/s10/prof; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/s9/rig/nginx/nginx.conf
rm -rf e1; $S/start-proxy.sh $W/e1 18991 $P "" java -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit -XX:+PreserveFramePointer
sleep 8; $S/warm.sh 18991 > /dev/null 2>&1
taskset -c 0 wrk -t1 -c64 -d10s -s $S/post.lua http://127.0.0.1:18902/v1/chat/completions >/dev/null
for port in 18991 18902; do
  (taskset -c 0 wrk -t1 -c64 -d12s -s $S/post.lua http://127.0.0.1:$port/v1/chat/completions > wrk-$port.out 2>&1 &)
  sleep 3; perf record -F 2999 -g -C 1 -o $W/perf-$port.data -- sleep 6 2>&1 | tail -1
  sleep 4
done
pid=$(ss -ltnp "sport = :18991" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); kill $pid; sleep 2
nginx -s stop -c /tmp/s9/rig/nginx/nginx.conf; pkill -f 'bench.jar mock'
