#!/bin/bash
# Heap allocated per stream: GC log over 100 h2load bursts of 100 short streams (EV events each), proxy HEAD, JDK 17 defaults
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p17; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf e1; $S/start-proxy.sh /tmp/p17/e1 18991 ${JAR:-/tmp/p16/base.jar} "" java -Xlog:gc:file=/tmp/p17/alloc-gc.log:uptime $JOPTS
sleep 8; for i in $(seq 1 20); do ./ttfb.sh 18991 100 >/dev/null; done
pid=$(ss -ltnp 'sport = :18991' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
jcmd $pid GC.run > /dev/null; sleep 1
for i in $(seq 1 100); do ./ttfb.sh 18991 100 >/dev/null; done
jcmd $pid GC.heap_info | head -3
pkill -f 'p16/base.jar|p17/.*jar'; sleep 1; pkill -f 'bench.jar mock'
