#!/bin/bash
# Latency distribution at 16 and 64 connections, Nginx and the proxy (HEAD), interleaved, 3 rounds of 8 s
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p17; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf e1; $S/start-proxy.sh /tmp/p17/e1 18991 ${JAR:-/tmp/p16/base.jar} "" java $JOPTS
sleep 8; $S/warm.sh 18991 > /dev/null 2>&1
for r in 1 2 3; do for c in 16 64; do for p in 18902 18991 ; do
  taskset -c 0 wrk -t1 -c$c -d2s -s /tmp/p16/postp.lua http://127.0.0.1:$p/v1/chat/completions > /dev/null
  echo "r=$r c=$c port=$p $(taskset -c 0 wrk -t1 -c$c -d8s -s /tmp/p16/postp.lua http://127.0.0.1:$p/v1/chat/completions | grep -E 'lat_ms|Requests/sec' | tr '\n' ' ')"
done; done; done
pkill -f 'p16/base.jar|p17/.*jar'; nginx -s stop -c /tmp/p16/nginx/nginx.conf; sleep 1; pkill -f 'bench.jar mock'
