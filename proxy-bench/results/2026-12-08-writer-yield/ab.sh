#!/bin/bash
# Writer yield A/B: the same jar with the access log's file writes in one 64 KB write per batch
# (as shipped) and in 8 KB / 4 KB pieces with Thread.yield() between; Nginx beside. JDK 17 defaults.
ulimit -n 20000; W=/tmp/s20/rig; cd $W; export KEYS_FILE=$W/keys.txt
S=/work/main/proxy-bench/scripts; P=${P:-/tmp/s20/proxy-chunk.jar}
taskset -c 0 java -Xms256m -jar /tmp/s20/bench.jar mock 18900 > mock.log 2>&1 & mock=$!
taskset -c 1 nginx -c $W/nginx.conf
rm -rf a b c
$S/start-proxy.sh $W/a 18991 $P "" java
$S/start-proxy.sh $W/b 18992 $P "" java -Dmegallm.access.chunk=8192
$S/start-proxy.sh $W/c 18993 $P "" java -Dmegallm.access.chunk=4096
sleep 8; $S/warm.sh 18991 18992 18993 >/dev/null 2>&1
for c in ${LEVELS:-16 64 256}; do ROUNDS=${ROUNDS:-5} $S/wrk-ab.sh $c 5 shipped=18991 chunk8k=18992 chunk4k=18993 nginx=18902; done
for port in 18991 18992 18993; do kill $(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); done
nginx -s stop -c $W/nginx.conf; kill $mock; sleep 1; rm -rf $W/a/logs $W/b/logs $W/c/logs $W/access.log
