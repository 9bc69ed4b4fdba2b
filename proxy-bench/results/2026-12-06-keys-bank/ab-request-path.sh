#!/bin/bash
# Same-run before/after for af88af5 (RelayCall.start asks KeyWaiters.anyWaiting()): 3a810e7 jar vs af88af5 jar,
# JDK 17 defaults, 5 rotating rounds of 5 s at 16/64/256 connections; mock on core 0 with wrk, proxies on core 1
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/s7; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf g1 g2
$S/start-proxy.sh /tmp/s7/g1 18991 /tmp/s7/before-3a810e7.jar "" java
$S/start-proxy.sh /tmp/s7/g2 18992 /tmp/s7/after.jar "" java
sleep 8; $S/warm.sh 18991 18992 > /dev/null 2>&1
for c in 16 64 256; do ROUNDS=${ROUNDS:-5} /tmp/p18/wrkp.sh $c 5 before=18991 after=18992; done
pkill -f 'before-3a810e7.jar|after.jar'; pkill -f 'bench.jar mock'
