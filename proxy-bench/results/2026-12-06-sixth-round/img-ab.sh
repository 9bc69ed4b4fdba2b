#!/bin/bash
# Image-JVM flags, same run, rotating order (wrkp.sh): the Docker image's JVM (Temurin 25, MaxRAM=2g as compose's limit)
# as shipped against a small young generation, Nginx beside; then 9,500 held streams on each (held.sh), one after the other.
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
JAR=${JAR:-/tmp/p19/after3.jar}
T25=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
SHIP="-XX:MaxRAMPercentage=50 -XX:+UseParallelGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
cd /tmp/p19; export KEYS_FILE=/tmp/p16/keys.txt; ulimit -n 20000
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -f /tmp/p16/nginx/access.log; taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf i0 i1 i2; mkdir -p i0 i1 i2
$S/start-proxy.sh /tmp/p19/i0 18981 $JAR "$SHIP" $T25 -XX:MaxRAM=2g -Xlog:gc:file=/tmp/p19/i0/gc.log
$S/start-proxy.sh /tmp/p19/i1 18982 $JAR "$SHIP -Xmn24m" $T25 -XX:MaxRAM=2g -Xlog:gc:file=/tmp/p19/i1/gc.log
$S/start-proxy.sh /tmp/p19/i2 18983 $JAR "$SHIP -Xmn24m -XX:TrimNativeHeapInterval=10000" $T25 -XX:MaxRAM=2g -Xlog:gc:file=/tmp/p19/i2/gc.log
sleep 8; $S/warm.sh 18981 18982 18983 > /dev/null 2>&1
for c in 16 64 256; do ROUNDS=${ROUNDS:-5} /tmp/p18/wrkp.sh $c 5 shipped=18981 xmn24=18982 xmn24trim=18983 nginx=18902; done
for g in i0 i1 i2; do echo "$g young GCs: $(grep -c 'Pause Young' $g/gc.log), full: $(grep -c 'Pause Full' $g/gc.log)"; grep 'Pause' $g/gc.log | tail -1; done
for p in 18902 18981 18982 18983; do sleep 5; /tmp/p16/held.sh $p 9500; done
pkill -f "$JAR"; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'
