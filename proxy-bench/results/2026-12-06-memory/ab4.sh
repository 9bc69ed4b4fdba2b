#!/bin/bash
# wrk A/B in one run: before (old jar, shipped flags) and after (new jar, proposed flags), JDK 17 and the image's JVM
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
T25=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
IMG="-XX:MaxRAMPercentage=50 -XX:+UseParallelGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
SER="-XX:MaxRAMPercentage=50 -XX:+UseSerialGC -Xmn24m -XX:TrimNativeHeapInterval=10000 -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
PAR="-XX:MaxRAMPercentage=50 -XX:+UseParallelGC -Xmn24m -XX:TrimNativeHeapInterval=10000 -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
S=/work/main/proxy-bench/scripts
cd /tmp/mem; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf a1 a2 a3 a4 a5
$S/start-proxy.sh /tmp/mem/a1 18991 /tmp/mem/old.jar "" java -Xlog:gc:file=/tmp/mem/a1.gc
$S/start-proxy.sh /tmp/mem/a2 18992 /tmp/mem/new.jar "" java -XX:+UseSerialGC -Xmn24m -Xlog:gc:file=/tmp/mem/a2.gc
$S/start-proxy.sh /tmp/mem/a3 18993 /tmp/mem/old.jar "$IMG" $T25 -XX:MaxRAM=2g -Xlog:gc:file=/tmp/mem/a3.gc
$S/start-proxy.sh /tmp/mem/a4 18994 /tmp/mem/new.jar "$SER" $T25 -XX:MaxRAM=2g -Xlog:gc:file=/tmp/mem/a4.gc
$S/start-proxy.sh /tmp/mem/a5 18995 /tmp/mem/new.jar "$PAR" $T25 -XX:MaxRAM=2g -Xlog:gc:file=/tmp/mem/a5.gc
sleep 8; $S/warm.sh 18991 18992 18993 18994 18995 > /dev/null 2>&1
for c in 16 64 256; do ROUNDS=3 $S/wrk-ab.sh $c 5 nginx=18902 old-d17=18991 new-d17-ser-xmn24=18992 old-img=18993 new-img-ser=18994 new-img-par=18995; done
for p in 18991 18992 18993 18994 18995; do pid=$(ss -ltnp "sport = :$p" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); echo "$p rss $(grep VmRSS /proc/$pid/status)"; done
for i in 1 2 3 4 5; do awk '/Pause Young/{gsub("ms","",$NF); s+=$NF; n++; if($NF>m)m=$NF} /Pause Full/{f++} END{printf "a'$i' young n=%d mean=%.2fms max=%.2fms full=%d\n", n, s/n, m, f}' a$i.gc; done
pkill -f 'old.jar|new.jar'; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'
