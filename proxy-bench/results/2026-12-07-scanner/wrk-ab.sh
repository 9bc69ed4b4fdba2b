#!/bin/bash
# The request path before (6380614) and after bfbd18f (the scanner on byte arrays): same JVM (JDK 17
# defaults), both jars beside Nginx, rotating order, 5 rounds of 5 s per level (wrk-ab.sh).
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
W=/tmp/s10/ab; mkdir -p $W; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/s9/rig/nginx/nginx.conf
rm -rf b a
$S/start-proxy.sh $W/b 18991 /tmp/s10/before.jar "" java
$S/start-proxy.sh $W/a 18992 /tmp/s10/after.jar "" java
sleep 8; $S/warm.sh 18991 18992 > /dev/null 2>&1
for c in 16 64 256; do ROUNDS=5 $S/wrk-ab.sh $c 5 before=18991 after=18992 nginx=18902; done
pkill -f 's10/before.jar|s10/after.jar'; nginx -s stop -c /tmp/s9/rig/nginx/nginx.conf; pkill -f 'bench.jar mock'
