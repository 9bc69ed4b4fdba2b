#!/bin/bash
# The access line's fixed parts copied as arrays (literals) against the line as before (225dad2):
# two jars as shipped (access log to the file and the console), JDK 17 defaults, beside Nginx;
# wrk-ab.sh rotating, 7 rounds of 5 s at 16 and 64 connections.
J=/tmp/s12/bench.jar
S=/work/main/proxy-bench/scripts
W=/tmp/s12/lit; mkdir -p $W; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/s9/rig/nginx/nginx.conf
rm -rf a b
$S/start-proxy.sh $W/a 18991 /tmp/s12/proxy-225dad2.jar "" java
$S/start-proxy.sh $W/b 18992 /tmp/s12/proxy-literals.jar "" java
sleep 8; $S/warm.sh 18991 18992 > /dev/null 2>&1
for c in 16 64; do ROUNDS=7 $S/wrk-ab.sh $c 5 before=18991 literals=18992 nginx=18902; done
for port in 18991 18992; do pid=$(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); kill $pid; done; sleep 3
nginx -s stop -c /tmp/s9/rig/nginx/nginx.conf; pkill -f 'bench.jar mock'
rm -rf $W/a $W/b /tmp/s9/rig/nginx/access.log
