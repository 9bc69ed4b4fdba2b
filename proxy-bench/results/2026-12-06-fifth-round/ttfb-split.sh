#!/bin/bash
# 1,000 streams at once through the proxy (JDK 17 defaults) and Nginx: client TTFB (h2load) against the
# proxy's own ttfb_ms (access log: request's first byte read -> answer head sent)
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p18; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -f /tmp/p16/nginx/access.log; taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf t1; $S/start-proxy.sh /tmp/p18/t1 18991 /tmp/p18/head.jar "" java
sleep 8; $S/warm.sh 18991 > /dev/null 2>&1
for i in $(seq 1 8); do EV=60 /tmp/p17/ttfb.sh 18991 1000 > /dev/null; EV=60 /tmp/p17/ttfb.sh 18902 1000 > /dev/null; done
for r in 1 2 3 4; do
  EV=20 /tmp/p17/ttfb.sh 18902 1000
  n0=$(wc -l < t1/logs/access.log)
  EV=20 /tmp/p17/ttfb.sh 18991 1000
  sleep 0.5
  tail -n +$((n0+1)) t1/logs/access.log | grep -o 'ttfb_ms=[0-9.]*' | cut -d= -f2 | sort -n | awk '{a[NR]=$1} END{printf "  proxy own ttfb_ms: n=%d p50=%s p90=%s p99=%s max=%s\n", NR, a[int(NR*0.5)], a[int(NR*0.9)], a[int(NR*0.99)], a[NR]}'
done
pkill -f 'p18/head.jar'; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'
