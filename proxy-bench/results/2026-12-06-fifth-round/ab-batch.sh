#!/bin/bash
# A/B: access-log batch size 64 KB (as shipped) / 256 KB / 1 MB, one jar, Nginx beside; JDK 17 defaults
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p18; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -f /tmp/p16/nginx/access.log; taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf b64 b256 b1m
$S/start-proxy.sh /tmp/p18/b64 18991 /tmp/p18/ab.jar "" java -Dmegallm.ab.flushAt=65536
$S/start-proxy.sh /tmp/p18/b256 18992 /tmp/p18/ab.jar "" java -Dmegallm.ab.flushAt=262144
$S/start-proxy.sh /tmp/p18/b1m 18993 /tmp/p18/ab.jar "" java -Dmegallm.ab.flushAt=1048576
sleep 8; $S/warm.sh 18991 18992 18993 > /dev/null 2>&1
for c in 16 64; do ROUNDS=${ROUNDS:-5} ./wrkp.sh $c 5 b64=18991 b256=18992 b1m=18993 nginx=18902; done
pkill -f 'p18/ab.jar'; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'
