#!/bin/bash
# What the access log's bytes cost in p99: the proxy as shipped (file and console), with
# ACCESS_LOG_CONSOLE=false (file only), and with the access log off (logback.xml with
# megallm.access at OFF: not a configuration the proxy offers, it attributes), beside Nginx; one
# jar (82554ee), JDK 17 defaults, all on core 1; wrk-ab.sh rotating, 7 rounds of 5 s per level.
# The writer thread's share of the core per variant comes from /proc/<pid>/task/*/stat.
J=/tmp/s11/bench-82554ee.jar
P=/tmp/s11/proxy-82554ee.jar
S=/work/main/proxy-bench/scripts
W=/tmp/s11/alog; mkdir -p $W; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
unzip -p $P logback.xml | sed -E 's/(<logger +name="megallm\.access" +level=")[A-Za-z]+(")/\1OFF\2/' > $W/logback-off.xml
grep -c 'megallm.access" level="OFF"' $W/logback-off.xml
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/s9/rig/nginx/nginx.conf
rm -rf s f o
$S/start-proxy.sh $W/s 18991 $P "" java
EXTRA_ENV="ACCESS_LOG_CONSOLE=false" $S/start-proxy.sh $W/f 18992 $P "" java
$S/start-proxy.sh $W/o 18993 $P "" java -Dlogback.configurationFile=$W/logback-off.xml
sleep 8; $S/warm.sh 18991 18992 18993 > /dev/null 2>&1
writer() { # CPU ticks of the proxy's access-log writer thread(s)
  pid=$(ss -ltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  for t in /proc/$pid/task/*; do grep -q AsyncAppender $t/comm 2>/dev/null && awk '{s+=$14+$15} END {print s}' $t/stat; done | awk '{s+=$1} END {print s+0}'
}
w0="$(writer 18991) $(writer 18992) $(writer 18993)"
for c in 16 64 256; do ROUNDS=7 $S/wrk-ab.sh $c 5 shipped=18991 file-only=18992 log-off=18993 nginx=18902; done
echo "writer thread ticks before: $w0 after: $(writer 18991) $(writer 18992) $(writer 18993) (shipped, file-only, log-off)"
for port in 18991 18992 18993; do pid=$(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); kill $pid; done; sleep 3
nginx -s stop -c /tmp/s9/rig/nginx/nginx.conf; pkill -f 'bench.jar mock'
# The proxies' logs grow ~30 MB/s each under load: a few runs fill a disk.
rm -rf $W/s $W/f $W/o /tmp/s9/rig/nginx/access.log
