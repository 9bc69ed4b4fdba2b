#!/bin/bash
# CPU per stream set-up: perf on the peer's core over 30 h2load bursts of 100 short streams (3 events), proxy (HEAD) then Nginx
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p17; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf e1; $S/start-proxy.sh /tmp/p17/e1 18991 ${JAR:-/tmp/p16/base.jar} "" java $JOPTS
sleep 8; $S/warm.sh 18991 > /dev/null 2>&1
for i in $(seq 1 40); do ./ttfb.sh 18991 100 >/dev/null; ./ttfb.sh 18902 100 > /dev/null; done
for port in 18991 18902; do
perf record -F 4999 -g -C 1 -o /tmp/p17/perf-b100-$port.data -- bash -c "for i in \$(seq 1 30); do /tmp/p17/ttfb.sh $port 100; done" 2>&1 | grep -v "^\[" | sed 's/time to 1st byte/ttfb/' | tail -3
done
pkill -f 'p16/base.jar|p17/.*jar'; nginx -s stop -c /tmp/p16/nginx/nginx.conf; sleep 1; pkill -f 'bench.jar mock'
