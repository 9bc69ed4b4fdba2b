#!/bin/bash
# A/B: access log handed in 8 KB pieces with a yield between them (piece.jar) against HEAD 304105d (base.jar), Nginx beside; JDK 17 defaults
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p17; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf e1 e2
$S/start-proxy.sh /tmp/p17/e1 18991 /tmp/p16/base.jar "" java
$S/start-proxy.sh /tmp/p17/e2 18992 /tmp/p16/piece.jar "" java
sleep 8; $S/warm.sh 18991 18992 > /dev/null 2>&1
for c in 16 64; do ROUNDS=${ROUNDS:-5} $S/wrk-ab.sh $c 5 base=18991 piece=18992 nginx=18902; done
pkill -f 'base.jar|piece.jar'; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'
