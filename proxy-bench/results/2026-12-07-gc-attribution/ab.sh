#!/bin/bash
# Is GC the p99 tail at 16 connections? One jar, access log off in all three (attribution):
# JDK 17 defaults, -Xmn2g (a young collection every ~10 s: almost none in a 5-s round) and
# -Xmn24m (one every ~0.1 s), beside Nginx; wrk-ab.sh rotating, 7 rounds of 5 s, 16 and 64 conns.
J=/tmp/s12/bench.jar
P=/tmp/s12/proxy-225dad2.jar
S=/work/main/proxy-bench/scripts
W=/tmp/s12/gcab; mkdir -p $W; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
unzip -p $P logback.xml | sed -E 's/(<logger +name="megallm\.access" +level=")[A-Za-z]+(")/\1OFF\2/' > $W/logback-off.xml
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/s9/rig/nginx/nginx.conf
rm -rf a b c
$S/start-proxy.sh $W/a 18991 $P "" java -Dlogback.configurationFile=$W/logback-off.xml -Xlog:gc:file=$W/gc-a.log
$S/start-proxy.sh $W/b 18992 $P "" java -Dlogback.configurationFile=$W/logback-off.xml -Xmn2g -Xlog:gc:file=$W/gc-b.log
$S/start-proxy.sh $W/c 18993 $P "" java -Dlogback.configurationFile=$W/logback-off.xml -Xmn24m -Xlog:gc:file=$W/gc-c.log
sleep 8; $S/warm.sh 18991 18992 18993 > /dev/null 2>&1
for c in 16 64; do ROUNDS=7 $S/wrk-ab.sh $c 5 defaults=18991 xmn2g=18992 xmn24m=18993 nginx=18902; done
for x in a b c; do echo "$x: young collections $(grep -c 'Pause Young' gc-$x.log), mean $(grep 'Pause Young' gc-$x.log | awk '{s+=$NF} END {printf "%.3f", s/NR}') ms"; done
for port in 18991 18992 18993; do pid=$(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); kill $pid; done; sleep 3
nginx -s stop -c /tmp/s9/rig/nginx/nginx.conf; pkill -f 'bench.jar mock'
rm -rf $W/a $W/b $W/c /tmp/s9/rig/nginx/access.log
