#!/bin/bash
# Same-run before/after for d0aedb4+de92950 (TrialGate asked in KeyLifecycle.claimTrial): base.jar (304105d, same request
# path as 6c68387) against after.jar (7784ec5), Nginx beside; JDK 17 defaults, 5 rotating rounds of 5 s
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p18; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -f /tmp/p16/nginx/access.log; taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf g1 g2
$S/start-proxy.sh /tmp/p18/g1 18991 /tmp/p16/base.jar "" java
$S/start-proxy.sh /tmp/p18/g2 18992 /tmp/p18/after.jar "" java
sleep 8; $S/warm.sh 18991 18992 > /dev/null 2>&1
for c in 16 64; do ROUNDS=${ROUNDS:-5} ./wrkp.sh $c 5 before=18991 after=18992 nginx=18902; done
pkill -f 'base.jar|after.jar'; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'
