#!/bin/bash
# Is the proxy's CPU per request a property of the process (JIT outcome)? Four processes of the same jar (HEAD 729589f's),
# each warmed alone the same way, then measured interleaved at 64 connections, 3 rounds; then perf on core 1 for each.
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
JAR=/work/main/proxy-server/target/megallm-proxy.jar
cd /tmp/p17; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
for i in 1 2 3 4; do rm -rf /tmp/p17/m$i; $S/start-proxy.sh /tmp/p17/m$i 1898$i $JAR "" java; sleep 6; $S/warm.sh 1898$i > /dev/null 2>&1; done
ROUNDS=3 $S/wrk-ab.sh 64 6 p1=18981 p2=18982 p3=18983 p4=18984 nginx=18902
for i in 1 2 3 4; do
  (taskset -c 0 wrk -t1 -c64 -d9s -s $S/post.lua http://127.0.0.1:1898$i/v1/chat/completions > /tmp/p17/bm-wrk-$i.out 2>&1 &)
  sleep 2; perf record -F 1999 -g -C 1 -o /tmp/p17/bm-$i.data -- sleep 5 > /dev/null 2>&1; sleep 3
  echo "perf p$i: $(grep Requests/sec /tmp/p17/bm-wrk-$i.out)"
done
pkill -f 'megallm-proxy.jar'; nginx -s stop -c /tmp/p16/nginx/nginx.conf; sleep 1; pkill -f 'bench.jar mock'
