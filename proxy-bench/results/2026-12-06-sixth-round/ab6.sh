#!/bin/bash
# One run, rotating order (wrkp.sh), Nginx beside:
#  - JDK 17 defaults as shipped, and the same with the logback writer threads at nice 10 (renice by hand);
#  - the image's JVM (Temurin 25, MaxRAM=2g) as shipped, with -XX:TrimNativeHeapInterval=10000, and with
#    Serial GC instead of Parallel plus the trim;
# then 9,500 held streams on each (held.sh), one after the other.
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
JAR=${JAR:-/tmp/p19/after3.jar}
T25=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
SHIP="-XX:MaxRAMPercentage=50 -XX:+UseParallelGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
SER="-XX:MaxRAMPercentage=50 -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
cd /tmp/p19; export KEYS_FILE=/tmp/p16/keys.txt; ulimit -n 20000
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -f /tmp/p16/nginx/access.log; taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf k0 k1 k2 k3 k4; mkdir -p k0 k1 k2 k3 k4
$S/start-proxy.sh /tmp/p19/k0 18961 $JAR "" java
$S/start-proxy.sh /tmp/p19/k1 18962 $JAR "" java
$S/start-proxy.sh /tmp/p19/k2 18963 $JAR "$SHIP" $T25 -XX:MaxRAM=2g -Xlog:gc:file=/tmp/p19/k2/gc.log
$S/start-proxy.sh /tmp/p19/k3 18964 $JAR "$SHIP -XX:TrimNativeHeapInterval=10000" $T25 -XX:MaxRAM=2g -Xlog:gc:file=/tmp/p19/k3/gc.log
$S/start-proxy.sh /tmp/p19/k4 18965 $JAR "$SER -XX:TrimNativeHeapInterval=10000" $T25 -XX:MaxRAM=2g -Xlog:gc:file=/tmp/p19/k4/gc.log
sleep 10
pid=$(ss -ltnp "sport = :18962" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
for t in /proc/$pid/task/*; do c=$(cat $t/comm); case "$c" in AsyncAppender*) renice -n 10 -p ${t##*/} ;; esac; done
$S/warm.sh 18961 18962 18963 18964 18965 > /dev/null 2>&1
for c in 16 64 256; do ROUNDS=${ROUNDS:-5} /tmp/p18/wrkp.sh $c 5 jdk17=18961 jdk17nice=18962 img=18963 imgtrim=18964 imgserialtrim=18965 nginx=18902; done
for g in k2 k3 k4; do echo "$g young GCs: $(grep -c 'Pause Young' $g/gc.log), full: $(grep -c 'Pause Full' $g/gc.log)"; grep 'Pause' $g/gc.log | tail -1; done
for p in 18902 18961 18962 18963 18964 18965; do sleep 5; /tmp/p16/held.sh $p 9500; done
pkill -f "$JAR"; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'
