#!/bin/bash
# The image's JVM with a capped young generation, one run, rotating order (wrk-ab.sh), Nginx and JDK 17
# defaults beside: as shipped (Parallel GC, adaptive sizing), -XX:MaxNewSize=48m, -Xmn32m; then 9,500 held
# streams through each, one after the other (held.sh).
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
JAR=${JAR:-/tmp/s8/before.jar}
T25=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
SHIP="-XX:MaxRAMPercentage=50 -XX:+UseParallelGC -XX:TrimNativeHeapInterval=10000 -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
R=/tmp/s8/rig; cd $R; export KEYS_FILE=$R/keys.txt; ulimit -n 20000
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -f nginx/access.log; taskset -c 1 nginx -c $R/nginx/nginx.conf
rm -rf k1 k2 k3 k4; mkdir -p k1 k2 k3 k4
$S/start-proxy.sh $R/k1 18961 $JAR "" java -Xlog:gc:file=$R/k1/gc.log
$S/start-proxy.sh $R/k2 18962 $JAR "$SHIP -XX:MaxNewSize=48m" $T25 -XX:MaxRAM=2g -Xlog:gc:file=$R/k2/gc.log
$S/start-proxy.sh $R/k3 18963 $JAR "$SHIP -Xmn32m" $T25 -XX:MaxRAM=2g -Xlog:gc:file=$R/k3/gc.log
$S/start-proxy.sh $R/k4 18964 $JAR "$SHIP" $T25 -XX:MaxRAM=2g -Xlog:gc:file=$R/k4/gc.log
sleep 10
$S/warm.sh 18961 18962 18963 18964 > /dev/null 2>&1
for c in 16 64 256; do ROUNDS=${ROUNDS:-5} $S/wrk-ab.sh $c 5 jdk17=18961 imgnew48=18962 imgmn32=18963 img=18964 nginx=18902; done
for g in k1 k2 k3 k4; do echo "$g young GCs: $(grep -c 'Pause Young' $g/gc.log), full: $(grep -c 'Pause Full' $g/gc.log)"; grep 'Pause Young' $g/gc.log | tail -1; done
for p in 18902 18961 18962 18963 18964; do sleep 5; $R/held.sh $p 9500; done
pkill -f "$JAR"; nginx -s stop -c $R/nginx/nginx.conf; pkill -f 'bench.jar mock'
