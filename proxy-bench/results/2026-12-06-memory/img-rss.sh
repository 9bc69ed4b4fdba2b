#!/bin/bash
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
JAR=/work/main/proxy-server/target/megallm-proxy.jar
T25=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
IMG="-XX:MaxRAM=2g -XX:MaxRAMPercentage=50 -XX:+UseParallelGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
S=/work/main/proxy-bench/scripts
cd /tmp/mem; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf r1; $S/start-proxy.sh /tmp/mem/r1 18981 $JAR "$IMG" $T25 -XX:NativeMemoryTracking=summary
sleep 8
for c in 64 16 256 64; do taskset -c 0 wrk -t1 -c$c -d8s -s /tmp/p16/post.lua http://127.0.0.1:18981/v1/chat/completions | grep Requests; done
pid=$(ss -ltnp "sport = :18981" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
grep -E 'VmRSS|RssAnon|RssFile' /proc/$pid/status
jcmd $pid VM.native_memory summary | grep -E '^-|Total|malloc|mmap' | sed 's/reserved=[0-9]*KB, //'
pmap -x $pid | sort -k3 -n -r | head -25
pkill -f megallm-proxy.jar; pkill -f 'bench.jar mock'
