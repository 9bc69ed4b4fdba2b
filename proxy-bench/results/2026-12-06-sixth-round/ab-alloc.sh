#!/bin/bash
# Same-run before/after for the allocation cuts: before.jar (9e71bcd) against after3.jar, Nginx beside;
# JDK 17 defaults (+ -Xlog:gc to a file), 5 rotating rounds of 5 s at 16, 64 and 256 connections
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p19; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -f /tmp/p16/nginx/access.log; taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf g1 g2; mkdir -p g1 g2
$S/start-proxy.sh /tmp/p19/g1 18991 /tmp/p19/before.jar "" java -Xlog:gc:file=/tmp/p19/g1/gc.log
$S/start-proxy.sh /tmp/p19/g2 18992 /tmp/p19/${AFTER:-after3.jar} "" java -Xlog:gc:file=/tmp/p19/g2/gc.log
sleep 8; $S/warm.sh 18991 18992 > /dev/null 2>&1
java /tmp/p18/Probe32.java 2>/dev/null | tail -1
for c in 16 64 256; do ROUNDS=${ROUNDS:-5} /tmp/p18/wrkp.sh $c 5 before=18991 after=18992 nginx=18902; done
java /tmp/p18/Probe32.java 2>/dev/null | tail -1
for g in g1 g2; do echo "$g young GCs: $(grep -c 'Pause Young' $g/gc.log)"; grep 'Pause Young' $g/gc.log | tail -2; done
pkill -f "before.jar|after3.jar|after3.jar"; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'
