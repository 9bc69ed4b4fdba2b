#!/bin/bash
# The image's JVM with the trim, -Xlog:trimnative: how long each trim takes under wrk at 256 connections
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
T25=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
cd /tmp/p19; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf t0; mkdir -p t0
$S/start-proxy.sh /tmp/p19/t0 18951 /tmp/p19/after3.jar "-XX:MaxRAMPercentage=50 -XX:+UseParallelGC -XX:TrimNativeHeapInterval=10000 -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED" $T25 -XX:MaxRAM=2g -Xlog:trimnative=debug:file=/tmp/p19/t0/trim.log:uptime -Xlog:gc:file=/tmp/p19/t0/gc.log:uptime
sleep 6; $S/warm.sh 18951 > /dev/null 2>&1
for i in 1 2 3 4; do taskset -c 0 wrk -t1 -c256 -d20s -s /tmp/p16/postp.lua http://127.0.0.1:18951/v1/chat/completions | grep -E "Requests/sec|lat_ms"; done
pkill -f "p19/t0"; pkill -f 'bench.jar mock'
