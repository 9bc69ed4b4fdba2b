#!/bin/bash
# Same-run before/after of the twentieth session's request-path changes (a request in flight from its
# head on and the drain check at each answer's end, the documents count kept for cut answers, the
# Retry-After of several refusing limits, the key wait's decline count and the unanswered probe,
# a name's next address): the proxy of 0cf4b17 against the new one, JDK 17 defaults, both on
# core 1, mock and wrk on core 0; wrk-ab.sh rotating.
ulimit -n 20000; W=/tmp/s20/ab; cd $W; rm -rf before after
for i in $(seq -w 1 10); do echo "sk-mega-bench-000000000000000000$i"; done > keys.txt
S=/work/main/proxy-bench/scripts
taskset -c 0 java -Xms256m -jar /tmp/s20/bench-base.jar mock 18900 > mock.log 2>&1 & mock=$!
$S/start-proxy.sh $W/before 18991 /tmp/s20/proxy-before.jar "" java
$S/start-proxy.sh $W/after 18992 /tmp/s20/proxy-after.jar "" java
sleep 6; $S/warm.sh 18991 18992 >/dev/null 2>&1
for c in ${LEVELS:-16 64}; do ROUNDS=${ROUNDS:-5} $S/wrk-ab.sh $c 5 before=18991 after=18992; done
for port in 18991 18992; do kill $(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); done
kill $mock; sleep 1; rm -rf $W/before/logs $W/after/logs
