#!/bin/bash
# JDK 17 start flags, rotating A/B (wrk-ab.sh rotates the order each round): JVM defaults against a
# small young generation plus the native-heap trim, Nginx beside; GC logged for every JVM variant.
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
P=/work/main/proxy-server/target/megallm-proxy.jar
S=/work/main/proxy-bench/scripts
W=/tmp/s10/flags; mkdir -p $W; cd $W; cp /tmp/s9/rig/keys.txt $W/keys.txt; export KEYS_FILE=$W/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/s9/rig/nginx/nginx.conf
rm -rf d n24 n32
$S/start-proxy.sh $W/d 18991 $P "" java -Xlog:gc:file=$W/gc-d.log
$S/start-proxy.sh $W/n24 18992 $P "" java -Xmn24m -XX:TrimNativeHeapInterval=10000 -Xlog:gc:file=$W/gc-n24.log
$S/start-proxy.sh $W/n32 18993 $P "" java -Xmn32m -XX:TrimNativeHeapInterval=10000 -Xlog:gc:file=$W/gc-n32.log
sleep 8; $S/warm.sh 18991 18992 18993 > /dev/null 2>&1
for c in 16 64 256; do ROUNDS=${ROUNDS:-5} $S/wrk-ab.sh $c 5 defaults=18991 xmn24=18992 xmn32=18993 nginx=18902; done
for p in 18991 18992 18993; do pid=$(ss -ltnp "sport = :$p" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); echo "port $p rss $(grep VmRSS /proc/$pid/status)"; done
for v in d n24 n32; do echo "gc-$v: $(grep -c Pause gc-$v.log) pauses, mean $(grep -o '[0-9.]*ms$' gc-$v.log | tr -d ms | awk '{s+=$1;n++}END{printf "%.3f", s/n}') ms, max $(grep -o '[0-9.]*ms$' gc-$v.log | tr -d ms | sort -n | tail -1) ms"; done
pkill -f 'megallm-proxy.jar'; nginx -s stop -c /tmp/s9/rig/nginx/nginx.conf; pkill -f 'bench.jar mock'
