#!/bin/bash
# Kernel vs user CPU per request, Nginx and the proxy (HEAD), wrk -c64: perf record -C 1 for 5 s inside a 9-s wrk run each, twice
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
JAR=/work/main/proxy-server/target/megallm-proxy.jar
cd /tmp/p17; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf /tmp/p17/k1; $S/start-proxy.sh /tmp/p17/k1 18971 $JAR "" java -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit
sleep 6; $S/warm.sh 18971 > /dev/null 2>&1
for r in 1 2; do for port in 18902 18971; do
  (taskset -c 0 wrk -t1 -c64 -d9s -s $S/post.lua http://127.0.0.1:$port/v1/chat/completions > /tmp/p17/kvsu-wrk-$r-$port.out 2>&1 &)
  sleep 2; perf record -F 1999 -g -C 1 -o /tmp/p17/kvsu-$r-$port.data -- sleep 5 > /dev/null 2>&1; sleep 3
  echo "r$r port $port $(grep Requests/sec /tmp/p17/kvsu-wrk-$r-$port.out)"
done; done
pkill -f 'p17/k1'; sleep 1; pkill -f "$JAR"; nginx -s stop -c /tmp/p16/nginx/nginx.conf; sleep 1; pkill -f 'bench.jar mock'
