#!/bin/bash
# Third A/B, flags only (same jar for all): shipped flags against -Xmn24m (+ native heap trim for the image), 5 rounds
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
T25=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
JAR=/tmp/mem/new.jar
IMG="-XX:MaxRAMPercentage=50 -XX:+UseParallelGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
PAR="-XX:MaxRAMPercentage=50 -XX:+UseParallelGC -Xmn24m -XX:TrimNativeHeapInterval=10000 -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
S=/work/main/proxy-bench/scripts
cd /tmp/mem; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf c1 c2 c3 c4
$S/start-proxy.sh /tmp/mem/c1 18991 $JAR "" java
$S/start-proxy.sh /tmp/mem/c2 18992 $JAR "" java -Xmn24m
$S/start-proxy.sh /tmp/mem/c3 18993 $JAR "$IMG" $T25 -XX:MaxRAM=2g
$S/start-proxy.sh /tmp/mem/c4 18994 $JAR "$PAR" $T25 -XX:MaxRAM=2g
sleep 8; $S/warm.sh 18991 18992 18993 18994 > /dev/null 2>&1
for c in 64 256 16; do ROUNDS=5 $S/wrk-ab.sh $c 5 nginx=18902 d17=18991 d17-xmn24=18992 img=18993 img-xmn24-trim=18994; done
for p in 18991 18992 18993 18994; do pid=$(ss -ltnp "sport = :$p" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); echo "$p rss $(grep VmRSS /proc/$pid/status)"; done
pkill -f 'new.jar'; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'
